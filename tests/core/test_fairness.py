"""Fair scheduling: one user's many jobs do not hold up another user's one."""

from __future__ import annotations

from bot.app import build_service
from bot.core.dispatcher import worth_announcing
from bot.core.fair_queue import FairQueue
from bot.core.jobs import JobQueued, JobRunning
from tests.helpers import Recorder, actor, target


def test_the_fair_queue_serves_users_in_rotation():
    queue = FairQueue()
    for i in range(3):
        queue.push("a", f"a{i}")
    queue.push("b", "b0")
    assert [queue.pop() for _ in range(4)] == ["a0", "b0", "a1", "a2"]


def test_positions_match_the_order_jobs_are_served_in():
    queue = FairQueue()
    for i in range(20):
        queue.push("a", f"a{i}")
    queue.push("b", "b0")
    queue.push("c", "c0")
    queue.push("b", "b1")
    positions = queue.positions()
    assert all(queue.position(job) == place for job, place in positions.items())
    served = [queue.pop() for _ in range(len(positions))]
    assert [positions[job] for job in served] == list(range(1, len(served) + 1))


def test_a_cancelled_job_leaves_the_queue():
    queue = FairQueue()
    queue.push("a", "a0")
    queue.push("a", "a1")
    assert queue.remove("a0") and "a0" not in queue
    assert queue.pop() == "a1" and queue.pop() is None


async def test_a_second_users_job_overtakes_the_first_users_backlog(settings_for, fake_segmind):
    service = await build_service(settings_for(
        segmind={"concurrency": 1}, quota={"max_queued_per_user": 50},
    ))
    recorder = Recorder(service)
    # Everything is queued before the dispatcher starts, so the order is the queue's alone.
    for i in range(20):
        await service.imagine(actor("alice"), f"fox {i}", None, target())
    bobs = await service.imagine(actor("bob"), "a lone fox", None, target())
    await service.bus.drain()
    queued = [e for e in recorder.events if isinstance(e, JobQueued) and e.job.id == bobs.id]
    assert queued[0].position == 2  # behind alice's first job, not her twentieth
    await service.start()
    try:
        await recorder.wait_final(bobs.id)
        started = [e.job.id for e in recorder.events if isinstance(e, JobRunning)]
        assert started.index(bobs.id) == 1  # served second, right after alice's first
    finally:
        await service.stop()


async def test_waiting_jobs_hear_their_new_position_as_the_queue_moves(settings_for, fake_segmind):
    service = await build_service(settings_for(segmind={"concurrency": 1}))
    recorder = Recorder(service)
    fake_segmind.latency_s = 0.15
    await service.start()
    try:
        jobs = [await service.imagine(actor(), f"fox {i}", None, target()) for i in range(4)]
        await recorder.wait_final(jobs[-1].id)
        places = [e.position for e in recorder.events
                  if isinstance(e, JobQueued) and e.job.id == jobs[-1].id]
        assert places[0] >= 3 and places == sorted(places, reverse=True) and places[-1] < places[0]
        assert all(e.eta_s > 0 for e in recorder.events if isinstance(e, JobQueued))
    finally:
        await service.stop()


def test_a_place_within_the_first_ten_is_always_announced():
    assert worth_announcing(4, 3) and worth_announcing(11, 10) and worth_announcing(None, 500)


def test_far_back_a_place_is_announced_only_once_it_moved_by_a_tenth():
    assert not worth_announcing(500, 460) and worth_announcing(500, 450)
    assert not worth_announcing(30, 28) and worth_announcing(30, 27)
    assert not worth_announcing(7, 7)


def test_a_tenth_of_a_place_counts_in_whole_places_rounded_down():
    assert worth_announcing(15, 14) and worth_announcing(19, 18)  # a tenth of 15 or 19 is 1
    assert worth_announcing(25, 23) and not worth_announcing(25, 24)  # a tenth of 25 is 2
