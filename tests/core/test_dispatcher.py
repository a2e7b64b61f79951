"""What the dispatcher stores and tells: the job as stored in its events, where the images go,
the sentences of a failure and a cancel, the waits it announces, and its retry delays."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing

import pytest

from bot.app import DB_NAME, build_service
from bot.config import Settings
from bot.core.dispatcher import DispatchPolicy
from bot.core.errors import BackendTransient, NotCancellable, RateLimited
from bot.core.jobs import Job, JobDone, JobFailed, JobQueued, JobRunning, JobState
from bot.core.service import ImagineService
from tests.fakes.segmind import FakeSegmind
from tests.helpers import Recorder, actor, ledger_rows, target
from tests.reliability.support import until


@pytest.fixture
async def one_slot(settings_for: Callable[..., Settings],
                   fake_segmind: FakeSegmind) -> AsyncIterator[tuple[ImagineService, Recorder]]:
    """A started service with one Segmind slot whose answers wait for fake_segmind.gate."""
    fake_segmind.gate = asyncio.Event()
    service = await build_service(settings_for(segmind={"concurrency": 1}))
    recorder = Recorder(service)
    await service.start()
    yield service, recorder
    fake_segmind.gate.set()
    await service.stop()


async def running(recorder: Recorder, job: Job) -> None:
    await recorder.wait(lambda: any(isinstance(e, JobRunning) and e.job.id == job.id
                                    for e in recorder.events))


async def test_a_done_jobs_event_carries_the_job_as_stored(service):
    recorder = Recorder(service)
    started = time.monotonic()
    job = await service.imagine(actor(), "a red fox", None, target())
    done = await recorder.wait_final(job.id)
    elapsed = time.monotonic() - started

    stored = await service.jobs.get(job.id)
    assert isinstance(done, JobDone) and stored is not None
    assert stored.state is JobState.DONE and not stored.refunded and stored.error is None
    assert stored.images == done.images and len(done.images) == 1
    assert stored.backend_seconds is not None and 0 < stored.backend_seconds <= elapsed
    assert done.job.finished_at is not None and stored.finished_at is not None
    assert abs(done.job.finished_at - stored.finished_at) < 5
    assert dataclasses.replace(done.job, finished_at=stored.finished_at,
                               delivered=stored.delivered) == stored


async def test_a_done_jobs_images_are_files_in_its_folder_named_by_place_and_seed(
        service, settings_for):
    recorder = Recorder(service)
    job = await service.imagine(actor(), "a red fox --samples 2", None, target())
    done = await recorder.wait_final(job.id)

    assert isinstance(done, JobDone) and len(done.images) == 2
    folder = settings_for().storage.path / "images" / job.id
    for place, path in enumerate(done.images, start=1):
        assert path.parent == folder and path.is_file()
        assert re.fullmatch(rf"{place}-\d+\.(png|jpe?g|webp)", path.name), path.name


async def test_an_admins_result_shows_no_balance_when_admins_are_unlimited(service):
    recorder = Recorder(service)
    job = await service.imagine(actor(is_admin=True), "a red fox", None, target())
    done = await recorder.wait_final(job.id)
    assert isinstance(done, JobDone) and done.balance is None


async def test_a_result_that_cannot_be_saved_fails_the_job_with_a_sentence_and_refunds_it(
        settings_for):
    settings = settings_for()
    settings.storage.path.mkdir(parents=True)
    (settings.storage.path / "images").write_text("not a folder")  # the disk refuses the files
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    try:
        before = (await service.quota_status(actor())).balance
        job = await service.imagine(actor(), "a red fox", None, target())
        failed = await recorder.wait_final(job.id)
        stored = await service.jobs.get(job.id)
        balance = (await service.quota_status(actor())).balance
        ledger = [row["kind"] for row in await ledger_rows(service, job.id)]
    finally:
        await service.stop()

    assert isinstance(failed, JobFailed) and failed.refunded
    assert failed.message.startswith("Something went wrong on our side.")
    assert stored is not None and stored.state is JobState.FAILED
    assert (stored.error, stored.refunded) == (failed.message, True)
    assert ledger == ["reserve", "refund"]
    assert balance == before


def refuse_in_database(settings: Settings, *states: str) -> Callable[[], None]:
    """Make SQLite itself refuse to set a job to any of `states`, as a database that refuses
    writes would, through a connection of its own; returns what lifts the refusal."""
    path = settings.storage.path / DB_NAME
    listed = ", ".join(f"'{state}'" for state in states)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"CREATE TRIGGER refuse BEFORE UPDATE OF state ON jobs WHEN NEW.state IN "
                     f"({listed}) BEGIN SELECT RAISE(ABORT, 'the disk refused the write'); END")

    def lift() -> None:
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("DROP TRIGGER refuse")

    return lift


@pytest.fixture
async def one_worker(settings_for: Callable[..., Settings]) -> AsyncIterator[
        tuple[ImagineService, Recorder, Settings]]:
    """A started service with one Segmind slot and a heartbeat every 0.2 s."""
    settings = settings_for(segmind={"concurrency": 1}, dispatch={"heartbeat_s": 0.2})
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    yield service, recorder, settings
    await service.stop()


async def test_a_job_that_our_own_error_stops_fails_with_a_sentence_and_a_refund(one_worker):
    service, recorder, settings = one_worker
    lift = refuse_in_database(settings, "running")  # the job can never be marked running
    job = await service.imagine(actor(), "a red fox", None, target())

    failed = await recorder.wait_final(job.id)

    lift()
    stored = await service.jobs.get(job.id)
    assert isinstance(failed, JobFailed)
    assert (failed.message, failed.refunded) == (
        "Something went wrong on our side. Your credits were refunded.", True)
    assert stored is not None and (stored.state, stored.error) == (JobState.FAILED, failed.message)
    assert [row["kind"] for row in await ledger_rows(service, job.id)] == ["reserve", "refund"]
    assert (await service.quota_status(actor())).balance == 50


async def test_the_only_worker_goes_on_after_a_job_that_our_own_error_stopped(one_worker):
    service, recorder, settings = one_worker
    lift = refuse_in_database(settings, "running")
    crashed = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait_final(crashed.id)
    lift()

    after = await service.imagine(actor(), "a blue fox", None, target())

    assert isinstance(await recorder.wait_final(after.id), JobDone)


async def test_a_failure_the_database_refuses_to_record_is_recorded_by_the_next_heartbeat(
        one_worker, caplog):
    service, recorder, settings = one_worker
    lift = refuse_in_database(settings, "running", "failed")
    job = await service.imagine(actor(), "a red fox", None, target())
    await until(lambda: any("could not record job" in r.getMessage() for r in caplog.records),
                10, "the failure refused")
    assert (await service.jobs.get(job.id)).state is JobState.QUEUED  # type: ignore[union-attr]
    assert recorder.final(job.id) == []
    assert [row["kind"] for row in await ledger_rows(service, job.id)] == ["reserve"]

    lift()

    failed = await recorder.wait_final(job.id)
    assert isinstance(failed, JobFailed) and failed.refunded
    assert failed.message == "Something went wrong on our side. Your credits were refunded."
    assert [row["kind"] for row in await ledger_rows(service, job.id)] == ["reserve", "refund"]
    after = await service.imagine(actor(), "a blue fox", None, target())
    assert isinstance(await recorder.wait_final(after.id), JobDone)


async def test_cancelling_a_queued_job_stores_it_cancelled_refunds_it_and_says_so(one_slot):
    service, recorder = one_slot
    first = await service.imagine(actor(), "a red fox", None, target())
    await running(recorder, first)
    second = await service.imagine(actor(), "a blue fox", None, target())

    await service.cancel(actor(), second.id)

    told = await recorder.wait_final(second.id)
    stored = await service.jobs.get(second.id)
    assert isinstance(told, JobFailed)
    assert (told.message, told.refunded) == ("Cancelled. Your credits were refunded.", True)
    assert stored is not None
    assert (stored.state, stored.error, stored.refunded) == (JobState.CANCELLED, told.message, True)
    assert [row["kind"] for row in await ledger_rows(service, second.id)] == ["reserve", "refund"]


async def test_a_running_job_cannot_be_cancelled_and_is_told_why(one_slot):
    service, recorder = one_slot
    job = await service.imagine(actor(), "a red fox", None, target())
    await running(recorder, job)

    with pytest.raises(NotCancellable) as refused:
        await service.cancel(actor(), job.id)

    assert refused.value.sentence().startswith("That job is already running or finished")
    assert (await service.jobs.get(job.id)).state is JobState.RUNNING  # type: ignore[union-attr]


async def test_the_job_after_a_cancelled_one_still_runs(one_slot, fake_segmind):
    service, recorder = one_slot
    first = await service.imagine(actor(), "a red fox", None, target())
    await running(recorder, first)
    cancelled = await service.imagine(actor(), "a blue fox", None, target())
    await service.cancel(actor(), cancelled.id)
    fake_segmind.gate.set()
    await recorder.wait_final(first.id)

    after = await service.imagine(actor(), "a green fox", None, target())

    assert isinstance(await recorder.wait_final(after.id), JobDone)


async def test_a_backend_call_in_flight_is_counted_until_it_ends(settings_for, fake_segmind):
    fake_segmind.gate = asyncio.Event()
    service = await build_service(settings_for(segmind={"concurrency": 2}))
    recorder = Recorder(service)
    await service.start()
    try:
        jobs = [await service.imagine(actor(), f"fox {n}", None, target()) for n in range(2)]
        for job in jobs:
            await running(recorder, job)
        in_flight = service.dispatcher.running()
        fake_segmind.gate.set()
        for job in jobs:
            await recorder.wait_final(job.id)
        await until(lambda: service.dispatcher.running() == {"segmind": 0}, 10, "calls ended")
    finally:
        fake_segmind.gate.set()
        await service.stop()

    assert in_flight == {"segmind": 2}


async def test_the_wait_announced_is_the_place_per_slot_times_the_backends_mean_time(
        settings_for, fake_segmind):
    service = await build_service(settings_for(segmind={"concurrency": 2},
                                               dispatch={"initial_eta_s": 10.0}))
    recorder = Recorder(service)
    await service.start()
    try:
        first = await service.imagine(actor(), "a red fox", None, target())
        await recorder.wait_final(first.id)
        measured = (await service.jobs.get(first.id)).backend_seconds  # type: ignore[union-attr]
        assert measured is not None
        fake_segmind.gate = asyncio.Event()
        waiting = [await service.imagine(actor(f"u{n}"), "a fox", None, target())
                   for n in range(5)]
        await recorder.wait(lambda: {e.position for e in recorder.events
                                     if isinstance(e, JobQueued)} >= {1, 2, 3})
    finally:
        if fake_segmind.gate is not None:
            fake_segmind.gate.set()
        await service.stop()

    mean = 0.8 * 10.0 + 0.2 * measured  # one answer so far moved the mean from 10 s
    announced = [e for e in recorder.events
                 if isinstance(e, JobQueued) and e.job.id in {job.id for job in waiting}]
    assert any(e.position == 3 for e in announced)
    for event in announced:
        assert event.eta_s == pytest.approx(math.ceil(event.position / 2) * mean)


def test_retry_delays_double_per_attempt_up_to_the_cap_with_jitter_of_half_either_way():
    policy = DispatchPolicy(backoff_base_s=1.0, backoff_cap_s=30.0)
    rng = random.Random(7)
    for attempt, nominal in enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]):
        delays = [policy.backoff(attempt, BackendTransient(), rng) for _ in range(200)]
        assert all(0.5 * nominal <= delay <= 1.5 * nominal for delay in delays)
        assert min(delays) < 0.6 * nominal and max(delays) > 1.4 * nominal


def test_a_longer_retry_after_wins_up_to_the_cap():
    policy = DispatchPolicy(backoff_base_s=1.0, backoff_cap_s=30.0)
    rng = random.Random(7)
    assert policy.backoff(0, RateLimited(retry_after_s=20.0), rng) == 20.0
    assert policy.backoff(0, RateLimited(retry_after_s=90.0), rng) == 30.0


@pytest.mark.parametrize("admin", [False, True], ids=["member", "admin"])
async def test_an_undelivered_result_is_replayed_after_a_restart_with_the_users_balance(
        settings_for, admin):
    settings = settings_for()
    who = actor(is_admin=admin)
    first = await build_service(settings)
    undelivering = Recorder(first, deliver=False)  # an adapter that crashed while uploading
    await first.start()
    job = await first.imagine(who, "a red fox", None, target())
    await undelivering.wait_final(job.id)
    await first.stop()

    second = await build_service(settings)
    await second.start()
    try:
        replayed = await Recorder(second).wait_final(job.id)
        balance = (await second.quota_status(who)).balance
    finally:
        await second.stop()

    assert isinstance(replayed, JobDone)
    assert replayed.balance == balance and (balance is None) == admin


async def test_an_undelivered_failure_is_replayed_after_a_restart_with_its_sentence(
        settings_for, fake_segmind):
    settings = settings_for()
    fake_segmind.fail_for(400)  # the service rejects the request: the job fails at once
    first = await build_service(settings)
    undelivering = Recorder(first, deliver=False)
    await first.start()
    job = await first.imagine(actor(), "a red fox", None, target())
    told = await undelivering.wait_final(job.id)
    await first.stop()

    second = await build_service(settings)
    await second.start()
    try:
        replayed = await Recorder(second).wait_final(job.id)
    finally:
        await second.stop()

    assert isinstance(told, JobFailed) and isinstance(replayed, JobFailed)
    assert (replayed.message, replayed.refunded) == (told.message, True)


async def test_a_late_listener_hears_at_once_where_its_platforms_jobs_wait_and_no_others(
        one_slot):
    service, recorder = one_slot
    front = await service.imagine(actor(), "a red fox", None, target())
    await running(recorder, front)
    elsewhere = dataclasses.replace(target(), platform="other")
    theirs = await service.imagine(actor("bob"), "a green fox", None, elsewhere)
    mine = await service.imagine(actor(), "a blue fox", None, target())
    await recorder.wait(lambda: any(e.job.id == mine.id for e in recorder.events))
    # Nothing moves from here on (the front job's call is held), so no periodic report comes.

    late = Recorder(service)  # an adapter that connects while the jobs wait

    await late.wait(lambda: any(e.job.id == mine.id for e in late.events))
    await service.bus.drain()
    heard = [e for e in late.events if isinstance(e, JobQueued)]
    assert [e.job.id for e in heard] == [mine.id]
    assert theirs.id not in {e.job.id for e in late.events}


async def test_a_job_far_back_hears_its_place_only_once_it_moved_by_a_tenth(one_slot):
    service, recorder = one_slot
    front = await service.imagine(actor(), "a red fox", None, target())
    await running(recorder, front)
    waiting = [await service.imagine(actor(f"u{n}"), "a fox", None, target()) for n in range(22)]
    last = waiting[-1]

    def places(job: Job) -> list[int]:
        return [e.position for e in recorder.events
                if isinstance(e, JobQueued) and e.job.id == job.id]

    await recorder.wait(lambda: places(last) != [])
    assert places(last) == [22] and places(waiting[1]) == [2]

    await service.cancel(actor("u0"), waiting[0].id)  # everyone behind moves up one place
    await recorder.wait(lambda: places(waiting[1]) == [2, 1])  # the next tick has run
    await service.bus.drain()

    assert places(waiting[10]) == [11, 10]  # within the first ten: told
    assert places(last) == [22]  # one place of 22 is less than a tenth: not told


async def test_when_a_job_leaves_the_middle_of_the_queue_only_those_behind_it_hear(one_slot):
    service, recorder = one_slot
    front = await service.imagine(actor(), "a red fox", None, target())
    await running(recorder, front)
    waiting = [await service.imagine(actor(f"u{n}"), "a fox", None, target()) for n in range(5)]

    def places(job: Job) -> list[int]:
        return [e.position for e in recorder.events
                if isinstance(e, JobQueued) and e.job.id == job.id]

    await recorder.wait(lambda: all(places(job) for job in waiting))
    before = [places(job) for job in waiting]
    assert before == [[1], [2], [3], [4], [5]]

    await service.cancel(actor("u2"), waiting[2].id)

    await recorder.wait(lambda: places(waiting[4]) == [5, 4])
    await service.bus.drain()
    assert [places(job) for job in waiting[:2]] == [[1], [2]]  # ahead of it: nothing new
    assert places(waiting[3]) == [4, 3]


async def test_the_expected_wait_counts_whole_rounds_of_the_backends_slots_at_its_mean_time(
        settings_for, fake_segmind):
    fake_segmind.gate = asyncio.Event()
    service = await build_service(settings_for(segmind={"concurrency": 2},
                                               dispatch={"initial_eta_s": 10.0}))
    recorder = Recorder(service)
    await service.start()
    jobs: list[Job] = []
    try:
        for n in range(3):
            jobs.append(await service.imagine(actor(f"u{n}"), "a fox", None, target()))
        await recorder.wait(lambda: sum(isinstance(e, JobRunning) for e in recorder.events) == 2)
        # two calls hold both slots and one job waits: one whole round of 10 s ahead
        assert service.dispatcher.expected_wait("segmind") == 10.0
        assert service.dispatcher.expected_wait("no-such-backend") == 0.0
    finally:
        fake_segmind.gate.set()
        for job in jobs:
            await recorder.wait_final(job.id)
        await service.stop()
