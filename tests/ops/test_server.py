"""/healthz and /metrics, scraped over HTTP from a running service."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import build_service
from bot.core.jobs import JobRunning
from bot.core.service import ImagineService
from bot.ops.health import HealthBoard
from bot.ops.metrics import PrometheusTelemetry
from bot.ops.server import OpsServer
from tests.helpers import Recorder, actor, target


@pytest.fixture
async def running(settings_for) -> AsyncIterator[tuple[ImagineService, HealthBoard, OpsServer]]:
    service = await build_service(settings_for(dispatch={"max_retries": 1}),
                                  PrometheusTelemetry())
    await service.start()
    board = HealthBoard()
    server = OpsServer(service, board, host="127.0.0.1", port=0)
    await server.start()
    yield service, board, server
    await server.close()
    await service.stop()


async def get(server: OpsServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(server.url + path, timeout=10)


async def up() -> None:
    return None


async def reconnecting() -> str:
    return "the gateway is reconnecting"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, for every sample of a scrape."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_healthz_is_200_when_the_database_is_writable_and_every_chat_is_up(running):
    _, board, server = running
    board.report("discord", up)

    answer = await get(server, "/healthz")

    assert answer.status_code == 200
    assert answer.json()["ok"] is True and answer.json()["problems"] == {}


async def test_healthz_is_503_naming_a_chat_connection_that_is_down(running):
    _, board, server = running
    board.report("discord", up)
    board.report("slack", reconnecting)

    answer = await get(server, "/healthz")

    assert answer.status_code == 503
    assert answer.json()["problems"] == {"slack": "the gateway is reconnecting"}


async def test_healthz_counts_a_configured_chat_that_never_connected_as_down(running):
    _, board, server = running
    board.expect("discord")

    answer = await get(server, "/healthz")

    assert answer.status_code == 503
    assert answer.json()["problems"] == {"discord": "not connected yet"}


async def test_healthz_is_503_when_the_database_cannot_be_written(running):
    service, _, server = running
    other = sqlite3.connect(service.db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        answer = await get(server, "/healthz")
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert answer.status_code == 503
    assert "database" in answer.json()["problems"]


async def test_metrics_count_a_finished_job_its_credits_and_its_times(running, fake_segmind):
    service, _, server = running
    fake_segmind.credits = 500.0
    before = samples((await get(server, "/metrics")).text)
    recorder = Recorder(service)
    job = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait_final(job.id)

    answer = await get(server, "/metrics")
    after = samples(answer.text)

    assert answer.headers["content-type"].startswith("text/plain")
    labels = {"backend": "segmind", "model": "flux-schnell"}
    for state in ("submitted", "done"):
        assert value(after, "imagine_jobs_total", state=state, **labels) - value(
            before, "imagine_jobs_total", state=state, **labels) == 1
    assert value(after, "imagine_credits_total", kind="charged") - value(
        before, "imagine_credits_total", kind="charged") == job.cost
    histogram = "imagine_backend_request_seconds_count"
    assert value(after, histogram, outcome="ok", **labels) - value(
        before, histogram, outcome="ok", **labels) == 1
    assert value(after, "imagine_queue_wait_seconds_count", backend="segmind") - value(
        before, "imagine_queue_wait_seconds_count", backend="segmind") == 1
    for seconds, where in (("imagine_backend_request_seconds_sum", {"outcome": "ok", **labels}),
                           ("imagine_queue_wait_seconds_sum", {"backend": "segmind"})):
        assert 0 <= value(after, seconds, **where) - value(before, seconds, **where) < 60
    assert value(after, "imagine_backend_remaining_credits", backend="segmind") == 499.0
    assert value(after, "imagine_queue_jobs", backend="segmind", state="waiting") == 0


async def test_metrics_count_a_retry_a_failure_and_its_refund(running, fake_segmind):
    service, _, server = running
    fake_segmind.fail_for(500)
    before = samples((await get(server, "/metrics")).text)
    recorder = Recorder(service)
    job = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait_final(job.id)

    after = samples((await get(server, "/metrics")).text)

    labels = {"backend": "segmind", "model": "flux-schnell"}
    assert value(after, "imagine_backend_retries_total", backend="segmind") - value(
        before, "imagine_backend_retries_total", backend="segmind") == 1  # max_retries 1
    assert value(after, "imagine_jobs_total", state="failed", **labels) - value(
        before, "imagine_jobs_total", state="failed", **labels) == 1
    assert value(after, "imagine_credits_total", kind="refunded") - value(
        before, "imagine_credits_total", kind="refunded") == job.cost
    failed_calls = {"outcome": "error", **labels}
    assert value(after, "imagine_backend_request_seconds_count", **failed_calls) - value(
        before, "imagine_backend_request_seconds_count", **failed_calls) == 1
    assert 0 <= value(after, "imagine_backend_request_seconds_sum", **failed_calls) - value(
        before, "imagine_backend_request_seconds_sum", **failed_calls) < 60


async def test_metrics_count_the_refund_of_a_cancelled_job(running, fake_segmind):
    service, _, server = running
    fake_segmind.gate = asyncio.Event()  # every slot (4) holds a call; the fifth job waits
    recorder = Recorder(service)
    try:
        jobs = [await service.imagine(actor(f"u{n}"), "a red fox", None, target())
                for n in range(5)]
        await recorder.wait(lambda: sum(isinstance(e, JobRunning) for e in recorder.events) == 4)
        started = {e.job.id for e in recorder.events if isinstance(e, JobRunning)}
        [waiting] = [job for job in jobs if job.id not in started]
        before = samples((await get(server, "/metrics")).text)

        await service.cancel(actor(waiting.actor.user_id), waiting.id)

        after = samples((await get(server, "/metrics")).text)
    finally:
        fake_segmind.gate.set()

    assert value(after, "imagine_credits_total", kind="refunded") - value(
        before, "imagine_credits_total", kind="refunded") == waiting.cost
