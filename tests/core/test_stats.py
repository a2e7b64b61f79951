"""/stats numbers: reading `since`, percentiles, and a report checked against jobs a running
service made (done, failed, cancelled; Segmind and the worker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import build_service
from bot.core.jobs import JobDone, JobFailed, JobRunning
from bot.core.stats import StatsInputError, parse_since, percentile
from tests.fakes.segmind import FakeSegmind
from tests.helpers import Recorder, actor, target

NOW = datetime(2025, 3, 12, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(("word", "back"), [
    ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30)),
    ("2w", timedelta(weeks=2)), (" 12H ", timedelta(hours=12)),
])
def test_since_reads_hours_days_and_weeks_back_from_now(word, back):
    assert parse_since(word, NOW) == NOW - back


def test_since_reads_a_utc_date():
    assert parse_since("2025-03-01", NOW) == datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("word", ["yesterday", "7 days", "-7d", "7x", "", "2025-13-01"])
def test_a_since_that_cannot_be_read_says_what_is_accepted(word):
    with pytest.raises(StatsInputError, match="cannot be read: use 24h, 7d, 30d"):
        parse_since(word, NOW)


def test_a_since_of_nothing_is_refused():
    with pytest.raises(StatsInputError, match="'0d' is not allowed"):
        parse_since("0d", NOW)


def test_a_since_in_the_future_is_refused():
    with pytest.raises(StatsInputError, match="is not in the past"):
        parse_since("2025-04-01", NOW)


def test_a_since_more_than_a_year_back_is_refused():
    with pytest.raises(StatsInputError, match="too far back: at most 366 days"):
        parse_since("400d", NOW)


def test_percentiles_are_nearest_rank():
    values = [float(n) for n in range(1, 21)]  # 1..20

    assert (percentile(values, 0.5), percentile(values, 0.95)) == (10.0, 19.0)
    assert percentile([], 0.5) is None


@pytest.fixture
async def fake_worker() -> AsyncIterator[FakeSegmind]:
    health = {"models": ["flux-schnell", "chroma", "kolors"], "device": "cuda",
              "queue_depth": 0, "seconds_per_image": {}}
    async with FakeSegmind(api_key=None, health=health) as fake:
        yield fake


async def test_the_report_counts_the_jobs_a_service_made(settings_for, fake_segmind,
                                                         fake_worker):
    fake_segmind.model_costs = {"kolors": 0.25}
    settings = settings_for(worker={"url": fake_worker.root_url},
                            routing={"kolors": "segmind", "flux-schnell": "worker",
                                     "chroma": "segmind"},
                            budget={"limit": 10.0, "prices": {"kolors": 0.25}})
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    try:
        finals = []
        for user, text in (("ann", "a fox --model kolors --n 2"), ("ann", "a fox --model kolors"),
                           ("bob", "a fox --model flux-schnell --n 3")):
            job = await service.imagine(actor(user), text, None, target())
            finals.append(await recorder.wait_final(job.id))
        fake_segmind.fail_for(400)
        failed = await service.imagine(actor("bob"), "a fox --model kolors", None, target())
        finals.append(await recorder.wait_final(failed.id))
        fake_worker.gate = asyncio.Event()  # the next worker job stays queued: cancel it
        held = await service.imagine(actor("cy"), "a fox --model flux-schnell", None, target())
        await recorder.wait(lambda: any(isinstance(e, JobRunning) and e.job.id == held.id
                                        for e in recorder.events))
        waiting = await service.imagine(actor("cy"), "one more", None, target())
        await service.cancel(actor("cy"), waiting.id)
        fake_worker.gate.set()
        await recorder.wait_final(held.id)

        report = await service.stats(datetime.now(UTC) - timedelta(days=1))
    finally:
        await service.stop()

    assert [type(f) for f in finals] == [JobDone, JobDone, JobDone, JobFailed]
    assert (report.jobs, report.done, report.failed, report.cancelled, report.waiting) == (
        6, 4, 1, 1, 0)
    assert report.images == 2 + 1 + 3 + 1
    assert (report.credits_charged, report.credits_refunded) == (4 + 2 + 3 + 1, 2 + 1)
    # The first kolors job is priced from the table (nothing to measure from), the second
    # measured: both 0.25 an image.
    assert report.money == pytest.approx(0.75)
    assert report.money_measured == pytest.approx(0.25)
    backends = {b.name: b for b in report.backends}
    assert (backends["segmind"].jobs, backends["segmind"].failed) == (3, 1)
    assert backends["segmind"].failure_rate == pytest.approx(1 / 3)
    assert (backends["worker"].jobs, backends["worker"].done) == (3, 2)
    assert backends["worker"].gpu_seconds > 0 and backends["worker"].money == 0
    assert [(u.user_id, u.credits, u.images) for u in report.top_users] == [
        ("ann", 6, 3), ("bob", 3, 3), ("cy", 1, 1)]
    assert report.wait_p50_s is not None and report.wait_p95_s is not None
    assert report.days[-1] == datetime.now(UTC).date()
    assert report.images_per_day("kolors")[-1] == 3
    assert report.money_per_day()[-1] == pytest.approx(0.75)
    assert report.budget is not None and report.budget.spent == pytest.approx(0.75)
