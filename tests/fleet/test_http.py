"""The fleet answers bad requests as the worker does: 401, 400, 404, 413, with a sentence."""

from __future__ import annotations

import httpx

from tests.fleet.support import SMALL, Fleet

UNAUTHORIZED = {"error": "Missing or invalid API key: send it in the x-api-key header."}


def test_a_request_without_the_key_is_unauthorized(fleet: Fleet) -> None:
    response = httpx.post(f"{fleet.url}/v1/flux-schnell", json=SMALL, timeout=30)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_health_without_the_key_is_unauthorized(fleet: Fleet) -> None:
    response = httpx.get(f"{fleet.url}/health", headers={"x-api-key": "wrong"}, timeout=30)

    assert response.status_code == 401


def test_a_value_out_of_range_is_refused_with_what_is_allowed(fleet: Fleet) -> None:
    response = fleet.post("flux-schnell", {**SMALL, "steps": 99})

    assert response.status_code == 400
    assert response.json() == {"error": "steps 99 is not allowed: a whole number from 1 to 8."}


def test_a_sampler_the_model_lacks_is_refused_with_the_accepted_names(fleet: Fleet) -> None:
    response = fleet.post("flux-schnell", {**SMALL, "sampler_name": "dpmpp_2m"})

    assert response.status_code == 400
    assert "euler, euler_a" in response.json()["error"]


def test_a_model_the_fleet_does_not_serve_is_not_found(fleet: Fleet) -> None:
    response = fleet.post("kolors", {"prompt": "a red fox"})

    assert response.status_code == 404
    assert response.json() == {
        "error": "Model 'kolors' is not served here; this fleet serves flux-schnell."
    }


def test_a_body_over_256_kib_is_too_large(fleet: Fleet) -> None:
    response = fleet.client.post("/v1/flux-schnell", content=b"{" + b" " * 300_000 + b"}",
                                 headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json() == {"error": "The body is over 256 KiB."}
