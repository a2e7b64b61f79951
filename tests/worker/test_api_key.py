"""With IMAGINE_WORKER_API_KEY set, every route wants it in x-api-key (401 otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.worker.support import SMALL, Served, serve

KEY = "worker-key-7d1e"
BODY = {"prompt": "a red fox", **SMALL["flux-schnell"]}
UNAUTHORIZED = {"error": "Missing or invalid API key: send it in the x-api-key header."}


@pytest.fixture(scope="module")
def keyed(engine: Any) -> Iterator[Served]:
    """The worker with an API key, over a real socket."""
    yield from serve(engine, api_key=KEY)


def test_a_request_without_the_key_is_unauthorized(keyed: Served) -> None:
    response = keyed.post("flux-schnell", BODY)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_a_request_with_a_wrong_key_is_unauthorized(keyed: Served) -> None:
    response = keyed.post("flux-schnell", BODY, headers={"x-api-key": KEY + "x"})

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_a_request_with_the_key_is_served(keyed: Served) -> None:
    response = keyed.post("flux-schnell", BODY, headers={"x-api-key": KEY})

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"


def test_health_wants_the_key_too(keyed: Served) -> None:
    assert keyed.health().status_code == 401
    assert keyed.health(headers={"x-api-key": KEY}).status_code == 200


def test_the_key_is_checked_before_the_body(keyed: Served) -> None:
    response = keyed.post("flux-schnell", {"steps": 99})

    assert response.status_code == 401
