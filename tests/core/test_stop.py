"""A clean stop: running jobs get a bounded drain, the rest go back to the queue for the next
process, nothing new is accepted, and no credit moves twice."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import build_service
from bot.chat.render import HANDED_BACK, progress_text
from bot.core.errors import ShuttingDown
from bot.core.jobs import JobDone, JobHandedBack, JobRunning, JobState
from tests.helpers import Recorder, actor, ledger_rows, target
from tests.reliability.support import until


async def test_a_job_running_when_the_stop_begins_finishes_within_the_drain(
        settings_for, fake_segmind):
    fake_segmind.latency_s = 0.5
    service = await build_service(settings_for())
    recorder = Recorder(service)
    await service.start()
    job = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait(lambda: any(isinstance(e, JobRunning) for e in recorder.events))

    await service.stop(drain_s=10)

    assert isinstance(recorder.final(job.id)[0], JobDone)
    assert not [e for e in recorder.events if isinstance(e, JobHandedBack)]
    reopened = await build_service(settings_for())
    try:
        assert (await reopened.jobs.get(job.id)).state is JobState.DONE
        assert [r["kind"] for r in await ledger_rows(reopened, job.id)] == ["reserve", "commit"]
    finally:
        await reopened.stop()


async def test_a_drain_of_one_second_still_waits_for_an_answer_that_comes_within_it(
        settings_for, fake_segmind):
    fake_segmind.gate = asyncio.Event()
    service = await build_service(settings_for())
    recorder = Recorder(service)
    await service.start()
    job = await service.imagine(actor(), "a red fox", None, target())
    await until(lambda: len(fake_segmind.requests) == 1, 10, "the job sent to Segmind")

    stopping = asyncio.create_task(service.stop(drain_s=1.0))
    fake_segmind.gate.set()  # the answer comes as the drain begins
    await stopping

    assert isinstance(recorder.final(job.id)[0], JobDone)
    assert not [e for e in recorder.events if isinstance(e, JobHandedBack)]


async def test_a_job_still_running_when_the_drain_ends_is_handed_back_and_told_so(
        settings_for, fake_segmind):
    fake_segmind.latency_s = 30
    service = await build_service(settings_for())
    recorder = Recorder(service)
    await service.start()
    job = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait(lambda: any(isinstance(e, JobRunning) for e in recorder.events))

    await service.stop(drain_s=0.2)

    [handed] = [e for e in recorder.events if isinstance(e, JobHandedBack)]
    assert handed.job.id == job.id and progress_text(handed) == HANDED_BACK
    assert recorder.final(job.id) == []
    reopened = await build_service(settings_for())
    try:
        stored = await reopened.db.read("SELECT state, owner FROM jobs WHERE id = ?", (job.id,))
        assert tuple(stored[0]) == ("queued", None)
        assert [r["kind"] for r in await ledger_rows(reopened, job.id)] == ["reserve"]
    finally:
        await reopened.stop()


async def test_a_handed_back_job_runs_once_in_the_next_process_and_is_charged_once(
        settings_for, fake_segmind):
    fake_segmind.latency_s = 30
    first = await build_service(settings_for())
    await first.start()
    job = await first.imagine(actor(), "a red fox", None, target())
    await until(lambda: len(fake_segmind.requests) == 1, 10, "the job sent to Segmind")
    await first.stop(drain_s=0)

    fake_segmind.latency_s = 0
    successor = await build_service(settings_for())
    recorder = Recorder(successor)
    await successor.start()
    try:
        assert isinstance(await recorder.wait_final(job.id), JobDone)
        assert [r["kind"] for r in await ledger_rows(successor, job.id)] == ["reserve", "commit"]
        assert (await successor.quota_status(actor())).balance == 50 - job.cost
    finally:
        await successor.stop()


async def test_queued_jobs_are_not_started_during_the_drain(settings_for, fake_segmind):
    fake_segmind.latency_s = 0.5
    service = await build_service(settings_for(segmind={"concurrency": 1}))
    recorder = Recorder(service)
    await service.start()
    jobs = [await service.imagine(actor(), f"fox {i}", None, target()) for i in range(3)]
    await recorder.wait(lambda: any(isinstance(e, JobRunning) for e in recorder.events))

    await service.stop(drain_s=10)

    assert len(fake_segmind.requests) == 1  # only the one running when the stop began
    handed = {e.job.id for e in recorder.events if isinstance(e, JobHandedBack)}
    assert handed == {j.id for j in jobs[1:]}


async def test_a_stopping_bot_refuses_new_requests_with_a_sentence_and_charges_nothing(
        settings_for, fake_segmind):
    fake_segmind.latency_s = 0.5
    service = await build_service(settings_for())
    await service.start()
    running = await service.imagine(actor(), "a red fox", None, target())
    await until(lambda: len(fake_segmind.requests) == 1, 10, "a job running")
    before = (await service.quota_status(actor())).balance
    stopping = asyncio.create_task(service.stop(drain_s=10))  # drains the running job
    await until(lambda: service.stopping, 5, "the stop begun")

    with pytest.raises(ShuttingDown) as refused:
        await service.imagine(actor(), "a blue fox", None, target())
    assert refused.value.sentence() == ("The bot is restarting; please try again in a minute. "
                                        "Nothing was charged.")
    assert (await service.quota_status(actor())).balance == before
    assert [row["id"] for row in await service.db.read("SELECT id FROM jobs")] == [running.id]
    await stopping
