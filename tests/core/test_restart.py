"""A restart loses nothing: running jobs finish once, undelivered results are delivered once."""

from __future__ import annotations

from bot.app import build_service
from bot.core.jobs import JobDone, JobRunning, JobState
from bot.core.service import ImagineService
from tests.helpers import Recorder, actor, ledger_rows, target
from tests.reliability.books import rows
from tests.reliability.support import until


async def _wait_running(recorder: Recorder, job_id: str) -> None:
    await recorder.wait(lambda: any(isinstance(e, JobRunning) and e.job.id == job_id
                                    for e in recorder.events))


async def _settled(service: ImagineService) -> None:
    """Wait until no job waits or runs (in the database and in this process's queue) and
    every event handed out so far has reached its listener."""
    def idle() -> bool:
        unfinished = rows(service.db.path,
                          "SELECT id FROM jobs WHERE state IN ('queued', 'running')")
        return (not unfinished and set(service.dispatcher.queue_depth().values()) <= {0}
                and set(service.dispatcher.running().values()) <= {0})

    await until(idle, 10, "no job waiting or running")
    await service.bus.drain()


async def _crash(service: ImagineService) -> None:
    """As if kill -9 hit the process: its workers vanish and the kernel drops its lock, while
    its row and its jobs stay as they were (its database connection stays open for the caller
    to close)."""
    await service.dispatcher.abandon()


async def test_a_job_running_when_the_bot_stops_finishes_once_after_the_restart(
    settings_for, fake_segmind
):
    settings = settings_for()
    fake_segmind.latency_s = 0.5
    first = await build_service(settings)
    await first.start()
    job = await first.imagine(actor(), "a red fox", None, target())
    await _wait_running(Recorder(first), job.id)
    await first.stop()  # as if the process died mid-run: the row says 'running'
    calls_before = len(fake_segmind.requests)

    fake_segmind.latency_s = 0.0
    second = await build_service(settings)
    recorder = Recorder(second)
    await second.start()
    try:
        done = await recorder.wait_final(job.id)
        assert isinstance(done, JobDone)
        # Nothing is left that could run or announce it again: it is delivered, nothing waits
        # in the database or in the queue, and every event handed out has been delivered.
        await _settled(second)
        assert (await second.jobs.get(job.id)).delivered
        assert len(recorder.final(job.id)) == 1
        assert len(fake_segmind.requests) - calls_before == 1  # generated once after the restart
        kinds = [row["kind"] for row in await ledger_rows(second, job.id)]
        assert kinds == ["reserve", "commit"]
        assert (await second.quota_status(actor())).balance == 50 - job.cost
    finally:
        await second.stop()


async def test_queued_jobs_are_picked_up_after_a_restart(settings_for, fake_segmind):
    settings = settings_for(segmind={"concurrency": 1})
    fake_segmind.latency_s = 0.3
    first = await build_service(settings)
    await first.start()
    jobs = [await first.imagine(actor(), f"fox {i}", None, target()) for i in range(3)]
    await first.stop()

    fake_segmind.latency_s = 0.0
    second = await build_service(settings)
    recorder = Recorder(second)
    await second.start()
    try:
        for job in jobs:
            assert isinstance(await recorder.wait_final(job.id), JobDone)
    finally:
        await second.stop()


async def test_a_result_finished_but_never_delivered_is_delivered_after_the_restart(settings_for):
    settings = settings_for()
    first = await build_service(settings)
    undelivering = Recorder(first, deliver=False)  # an adapter that crashed while uploading
    await first.start()
    job = await first.imagine(actor(), "a red fox", None, target())
    await undelivering.wait_final(job.id)
    await first.stop()

    second = await build_service(settings)
    await second.start()
    recorder = Recorder(second)
    try:
        assert isinstance(await recorder.wait_final(job.id), JobDone)
        # A marker for the next start: a second result that is finished but never delivered.
        recorder.deliver = False
        marker = await second.imagine(actor(), "a blue fox", None, target())
        await recorder.wait_final(marker.id)
    finally:
        await second.stop()

    third = await build_service(settings)
    await third.start()
    late = Recorder(third)
    try:
        # The replay of undelivered results has run once it hands over the marker; it hands
        # them all over in one pass, so the first result would have come with it.
        await late.wait_final(marker.id)
        await third.bus.drain()
        assert late.final(job.id) == []  # delivered once: not again
        assert (await third.jobs.get(job.id)).state is JobState.DONE
    finally:
        await third.stop()


async def test_a_listener_that_registers_after_start_hears_where_resumed_jobs_wait(
    settings_for, fake_segmind
):
    settings = settings_for(segmind={"concurrency": 1})
    fake_segmind.latency_s = 1.0
    first = await build_service(settings)
    jobs = [await first.imagine(actor(), f"fox {i}", None, target()) for i in range(3)]
    await first.stop()  # never started: all three wait in the database

    second = await build_service(settings)
    await second.start()
    try:
        late = Recorder(second)  # as an adapter that connects after start()
        await late.wait(lambda: len({e.job.id for e in late.events}) >= 2)
        heard = {e.job.id for e in late.events}
        assert heard >= {j.id for j in jobs[1:]}
    finally:
        await second.stop()


async def test_a_process_starting_beside_a_live_one_leaves_its_jobs_alone(
    settings_for, fake_segmind
):
    settings = settings_for(segmind={"concurrency": 1})
    fake_segmind.latency_s = 0.3
    first = await build_service(settings)
    recorder = Recorder(first)
    await first.start()
    jobs = [await first.imagine(actor(), f"fox {i}", None, target()) for i in range(3)]
    beside = await build_service(settings)
    await beside.start()
    try:
        assert beside.dispatcher.queue_depth() == {"segmind": 0}
        for job in jobs:
            assert isinstance(await recorder.wait_final(job.id), JobDone)
        assert len(fake_segmind.requests) == 3  # each generated once, by its owner
    finally:
        await beside.stop()
        await first.stop()


async def test_the_jobs_of_a_crashed_process_are_taken_over_at_the_next_start(
    settings_for, fake_segmind
):
    settings = settings_for(segmind={"concurrency": 1})
    fake_segmind.latency_s = 5.0
    crashed = await build_service(settings)
    await crashed.start()
    job = await crashed.imagine(actor(), "a red fox", None, target())
    await _crash(crashed)
    fake_segmind.latency_s = 0.0

    successor = await build_service(settings)
    recorder = Recorder(successor)
    await successor.start()
    try:
        assert isinstance(await recorder.wait_final(job.id), JobDone)
        assert (await successor.jobs.get(job.id)).state is JobState.DONE
    finally:
        await successor.stop()
        await crashed.db.close()


async def test_a_queued_job_another_process_took_over_is_left_to_it(settings_for, fake_segmind):
    settings = settings_for(segmind={"concurrency": 1})
    fake_segmind.latency_s = 0.3
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    try:
        first = await service.imagine(actor(), "a red fox", None, target())
        second = await service.imagine(actor(), "a blue fox", None, target())
        await service.db.write("UPDATE jobs SET owner = 'another-process' WHERE id = ?",
                               (second.id,))
        third = await service.imagine(actor(), "a green fox", None, target())
        assert isinstance(await recorder.wait_final(first.id), JobDone)
        # One slot, and one user's jobs are served in order: once the third job is done, the
        # worker has already taken the second one from the queue and decided about it.
        assert isinstance(await recorder.wait_final(third.id), JobDone)
        await service.bus.drain()

        assert not [e for e in recorder.events
                    if e.job.id == second.id and isinstance(e, JobRunning | JobDone)]
        assert (await service.jobs.get(second.id)).state is JobState.QUEUED
        assert [row["kind"] for row in await ledger_rows(service, second.id)] == ["reserve"]
    finally:
        await service.stop()


async def test_a_live_process_takes_over_the_jobs_of_a_sibling_that_died(
    settings_for, fake_segmind
):
    settings = settings_for(segmind={"concurrency": 1}, dispatch={"heartbeat_s": 0.2})
    fake_segmind.latency_s = 5.0
    survivor = await build_service(settings)
    recorder = Recorder(survivor)
    await survivor.start()
    crashed = await build_service(settings)
    await crashed.start()
    running = await crashed.imagine(actor(), "a red fox", None, target())
    waiting = await crashed.imagine(actor(), "a blue fox", None, target())
    await _crash(crashed)
    fake_segmind.latency_s = 0.0
    try:
        for job in (running, waiting):
            assert isinstance(await recorder.wait_final(job.id), JobDone)
            assert (await survivor.jobs.get(job.id)).state is JobState.DONE
    finally:
        await survivor.stop()
        await crashed.db.close()


async def test_a_process_whose_row_was_removed_writes_it_again_at_its_next_heartbeat(
    settings_for,
):
    service = await build_service(settings_for(dispatch={"heartbeat_s": 0.1}))
    await service.start()
    try:
        await service.db.write("DELETE FROM processes WHERE id = ?", (service.jobs.owner,))

        def registered() -> bool:
            found = rows(service.db.path, "SELECT id FROM processes")
            return [row["id"] for row in found] == [service.jobs.owner]

        await until(registered, 5, "the row written again")
    finally:
        await service.stop()
