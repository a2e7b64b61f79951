"""kill -9 of a real `python -m bot run` (Discord) at four moments, then a restart on the same data:
every job is posted once (a copy more only for results posted in the instant before the kill) or
refunded with a sentence, nothing stays queued or running, the ledger balances, and a request
the bot never got as far as storing is never charged. bench/crash.py runs 100 per kill point."""

from __future__ import annotations

import pytest

from tests.reliability.crashkit import CrashReport, crash_run

REQUESTS = 20

pytestmark = pytest.mark.timeout(90)


async def run(point: str, tmp_path) -> CrashReport:
    report = await crash_run(point, REQUESTS, tmp_path, latency_s=0.2, concurrency=4,
                             kill_after=REQUESTS // 2)
    assert report.killed, f"the kill point {point} was never reached"
    return report


def assert_nothing_lost_or_charged_twice(report: CrashReport) -> None:
    text = "\n".join(report.lines())
    assert report.missing == [], text
    assert report.failures_untold == [], text
    assert report.books.balanced, f"{text}\n{report.books}"
    assert report.books.undelivered == [], text
    assert report.charged_without_job == 0, text
    assert report.unacked_with_job == 0, text
    assert report.duplicated_after_restart == 0, text  # copies only from the pre-kill instant
    assert report.delivered_once + len(report.duplicated_jobs) + report.failures_told == \
        report.jobs, text


async def test_a_kill_while_requests_arrive_loses_no_stored_job_and_charges_no_unstored_one(
        tmp_path):
    report = await run("arriving", tmp_path)

    assert_nothing_lost_or_charged_twice(report)
    never_acked = report.sent - report.acked + report.unsent
    assert report.jobs + report.acked_without_job + never_acked == REQUESTS


async def test_a_kill_while_jobs_run_reruns_them_and_posts_each_result(tmp_path):
    report = await run("running", tmp_path)

    assert_nothing_lost_or_charged_twice(report)
    assert report.regenerated >= 1  # the jobs in flight ran again after the restart


async def test_a_kill_right_after_the_backend_answered_reruns_the_job_and_charges_once(tmp_path):
    report = await run("answered", tmp_path)

    assert_nothing_lost_or_charged_twice(report)
    assert report.regenerated >= 1


async def test_a_kill_during_an_upload_posts_that_result_again_after_the_restart(tmp_path):
    report = await run("uploading", tmp_path)

    assert_nothing_lost_or_charged_twice(report)
    assert report.duplicated_in_window >= 1  # the documented at-least-once window, measured
