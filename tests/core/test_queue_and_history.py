"""Cancel from anywhere, the user's queue view, and the history with Run again."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import build_service
from bot.core.errors import JobNotFound, NotCancellable
from bot.core.jobs import Actor, JobAction, JobDone, JobFailed, JobRunning, JobState
from tests.helpers import Recorder, actor, ledger_rows, target


async def _holding(settings_for, fake_segmind, **sections):
    """A started service whose one Segmind slot is held, and a second job waiting behind it."""
    fake_segmind.gate = asyncio.Event()
    service = await build_service(settings_for(segmind={"concurrency": 1}, **sections))
    await service.start()
    recorder = Recorder(service)
    running = await service.imagine(actor(), "first", None, target())
    waiting = await service.imagine(actor(), "second", None, target())
    await recorder.wait(lambda: any(isinstance(e, JobRunning) and e.job.id == running.id
                                    for e in recorder.events))
    return service, running, waiting


async def test_a_job_cancelled_from_another_process_is_dropped_refunded_and_announced(
        settings_for, fake_segmind):
    settings = settings_for(segmind={"concurrency": 1}, dispatch={"heartbeat_s": 0.1})
    fake_segmind.gate = asyncio.Event()
    service = await build_service(settings)
    await service.start()
    recorder = Recorder(service)
    try:
        await service.imagine(actor(), "first", None, target())
        waiting = await service.imagine(actor(), "second", None, target())
        command_line = await build_service(settings)  # as `imagine-bot cancel` builds it
        try:
            await command_line.cancel(Actor("cli", "local", is_admin=True), waiting.id)
        finally:
            await command_line.stop()

        notice = await recorder.wait_final(waiting.id)  # this process hears it on its heartbeat
        ledger = await ledger_rows(service, waiting.id)
        fake_segmind.gate.set()
    finally:
        await service.stop(drain_s=30)

    assert isinstance(notice, JobFailed) and notice.refunded
    assert notice.message == "Cancelled. Your credits were refunded."
    assert [row["kind"] for row in ledger] == ["reserve", "refund"]
    assert [body["prompt"] for body in fake_segmind.bodies()] == ["first"]


async def test_a_running_job_cannot_be_cancelled_and_keeps_its_charge(settings_for, fake_segmind):
    service, running, _ = await _holding(settings_for, fake_segmind)
    try:
        with pytest.raises(NotCancellable):
            await service.cancel(actor(), running.id)
        assert (await service.get_job(running.id)).state is JobState.RUNNING
        assert [row["kind"] for row in await ledger_rows(service, running.id)] == ["reserve"]
        fake_segmind.gate.set()
    finally:
        await service.stop(drain_s=30)


async def test_cancelling_a_job_that_does_not_exist_says_so(service):
    with pytest.raises(JobNotFound):
        await service.cancel(actor(), "nosuchjob")


async def test_the_queue_shows_the_users_running_and_waiting_jobs_with_place_and_eta(
        settings_for, fake_segmind):
    service, running, waiting = await _holding(settings_for, fake_segmind)
    try:
        view = await service.queue(actor())
        fake_segmind.gate.set()
    finally:
        await service.stop(drain_s=30)

    assert [(q.job.id, q.job.state, q.place) for q in view.mine] == [
        (running.id, JobState.RUNNING, None), (waiting.id, JobState.QUEUED, 1)]
    assert view.mine[1].eta_s is not None and view.mine[1].eta_s > 0
    assert view.totals == {"segmind": (1, 1)}


async def test_the_queue_of_someone_else_lists_none_of_my_jobs(settings_for, fake_segmind):
    service, _, _ = await _holding(settings_for, fake_segmind)
    try:
        view = await service.queue(actor("bob"))
        fake_segmind.gate.set()
    finally:
        await service.stop(drain_s=30)

    assert view.mine == ()
    assert sum(waiting + running for waiting, running in view.totals.values()) == 2


async def test_history_lists_the_users_jobs_newest_first_and_only_theirs(service):
    recorder = Recorder(service)
    first = await service.imagine(actor(), "one", None, target())
    await service.imagine(actor("bob"), "bob's", None, target())
    second = await service.imagine(actor(), "two", None, target())
    await recorder.wait_final(second.id)

    assert [job.id for job in await service.history(actor())] == [second.id, first.id]
    assert [job.id for job in await service.history(actor(), limit=1)] == [second.id]


async def test_run_again_repeats_the_request_with_the_same_seed_and_charges_again(
        service, fake_segmind):
    recorder = Recorder(service)
    first = await service.imagine(actor(), "a red fox --seed 42 --ar 16:9", None, target())
    await recorder.wait_final(first.id)

    again = await service.again(actor(), first.id, target())
    done = await recorder.wait_final(again.id)

    assert isinstance(done, JobDone)
    assert again.action is JobAction.AGAIN and again.parent_id == first.id
    assert again.request == first.request
    assert [body["seed"] for body in fake_segmind.bodies()] == [42, 42]
    assert [row["kind"] for row in await ledger_rows(service, again.id)] == ["reserve", "commit"]


async def test_run_again_of_a_deleted_result_is_refused(service):
    recorder = Recorder(service)
    first = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait_final(first.id)
    await service.delete(actor(), first.id)

    with pytest.raises(JobNotFound):
        await service.again(actor(), first.id, target())
