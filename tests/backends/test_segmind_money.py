"""What a request cost in Segmind credits: the drop of x-remaining-credits across its own calls,
measured only when no other call overlapped them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bot.core.catalog import Catalog
from bot.core.request import ImagineRequest, build_request
from tests.backends.conftest import API_KEY
from tests.fakes.segmind import FakeSegmind


def imagine(text: str, **options: Any) -> ImagineRequest:
    """A validated request, as the chat adapters build it."""
    return build_request(text, options, Catalog())


async def test_the_fakes_credit_header_falls_by_each_calls_cost(fake: FakeSegmind):
    fake.credits, fake.model_costs = 10.0, {"chroma": 0.5, "kolors": 0.25}
    seen = []
    async with httpx.AsyncClient() as client:
        for model, body in (("chroma", {"prompt": "a"}), ("kolors", {"prompt": "b"}),
                            ("flux-schnell", {"prompt": "c"})):
            answer = await client.post(f"{fake.base_url}/{model}", json=body,
                                       headers={"x-api-key": API_KEY})
            seen.append(float(answer.headers["x-remaining-credits"]))

    assert seen == [9.5, 9.25, 8.25]  # flux-schnell falls back to cost_per_image (1.0)


async def test_the_first_request_after_start_has_no_measured_cost(backend, fake):
    result = await backend.generate(imagine("a fox"))

    assert result.remaining_credits == 999.0
    assert result.credits_spent is None


async def test_a_request_that_overlaps_no_other_is_measured_from_the_header(backend, fake):
    fake.model_costs = {"kolors": 0.25}
    await backend.generate(imagine("a fox"))  # sets the value to measure from
    before = time.time()

    result = await backend.generate(imagine("a fox --model kolors --n 3"))

    assert result.credits_spent == 0.75
    assert result.spent_since is not None and result.spent_since <= before


async def test_requests_whose_calls_overlap_are_not_measured(backend, fake):
    await backend.generate(imagine("a fox"))
    fake.latency_s = 0.2

    results = await asyncio.gather(backend.generate(imagine("one")),
                                   backend.generate(imagine("two")))

    assert [r.credits_spent for r in results] == [None, None]


async def test_a_call_without_the_header_makes_the_next_request_unmeasured(backend, fake):
    await backend.generate(imagine("a fox"))
    fake.credits_header = False
    await backend.generate(imagine("unread"))  # cost something nobody saw
    fake.credits_header = True

    result = await backend.generate(imagine("a fox"))

    assert result.credits_spent is None


async def test_a_top_up_between_requests_is_not_taken_for_a_negative_cost(backend, fake):
    await backend.generate(imagine("a fox"))
    fake.credits += 100  # the account was topped up meanwhile

    result = await backend.generate(imagine("a fox"))

    assert result.credits_spent is None

