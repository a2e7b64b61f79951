"""ImagineService end to end over the fake Segmind: charge, run, deliver, refund."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import build_service
from bot.core.errors import (
    InsufficientCredits,
    JobNotFound,
    NoBackendConfigured,
    NotAllowed,
    PolicyError,
    QueueFull,
    UserBlocked,
)
from bot.core.jobs import Job, JobDone, JobFailed, JobState
from tests.conftest import make_settings
from tests.helpers import Recorder, actor, ledger_rows, target


async def test_a_job_is_stored_queued_before_the_user_is_answered(service):
    job = await service.imagine(actor(), "a red fox", None, target())
    stored = await service.jobs.get(job.id)
    assert stored is not None and stored.state in (JobState.QUEUED, JobState.RUNNING)


async def test_a_finished_job_has_its_images_on_disk_and_is_charged_once(service, fake_segmind):
    recorder = Recorder(service)
    job = await service.imagine(actor(), "a red fox --n 2 --seed 7", None, target())
    done = await recorder.wait_final(job.id)
    assert isinstance(done, JobDone)
    assert len(done.images) == 2 and all(p.exists() and p.stat().st_size > 0 for p in done.images)
    assert [r.json["seed"] for r in fake_segmind.requests] == [7, 8]
    kinds = [row["kind"] for row in await ledger_rows(service, job.id)]
    assert kinds == ["reserve", "commit"]
    assert done.balance == 50 - job.cost


async def test_flux_schnell_at_its_defaults_costs_one_credit(service):
    job = await service.imagine(actor(), "a red fox", None, target())
    assert job.cost == 1


async def test_a_rejected_request_is_refunded_and_says_so(service, fake_segmind):
    recorder = Recorder(service)
    fake_segmind.faults = [400]
    job = await service.imagine(actor(), "a red fox", None, target())
    failed = await recorder.wait_final(job.id)
    assert isinstance(failed, JobFailed) and failed.refunded
    assert "refunded" in failed.message
    assert (await service.quota_status(actor())).balance == 50


async def test_a_bad_api_key_tells_the_user_the_service_is_unavailable_and_refunds(
    service, fake_segmind, caplog
):
    recorder = Recorder(service)
    fake_segmind.faults = [401]
    job = await service.imagine(actor(), "a red fox", None, target())
    failed = await recorder.wait_final(job.id)
    assert isinstance(failed, JobFailed) and failed.refunded
    assert "unavailable" in failed.message
    assert any("ADMIN" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert (await service.quota_status(actor())).balance == 50
    assert [row["kind"] for row in await ledger_rows(service, job.id)] == ["reserve", "refund"]


async def test_server_errors_are_retried_until_one_succeeds(service, fake_segmind):
    recorder = Recorder(service)
    fake_segmind.faults = [500, 502, 429]
    job = await service.imagine(actor(), "a red fox", None, target())
    assert isinstance(await recorder.wait_final(job.id), JobDone)
    assert len(fake_segmind.requests) == 4


async def test_server_errors_past_the_retry_limit_fail_the_job_and_refund(service, fake_segmind):
    recorder = Recorder(service)
    fake_segmind.faults = [500, 500, 500, 500]
    job = await service.imagine(actor(), "a red fox", None, target())
    failed = await recorder.wait_final(job.id)
    assert isinstance(failed, JobFailed) and failed.refunded
    assert len(fake_segmind.requests) == 4  # one try and three retries
    assert (await service.quota_status(actor())).balance == 50
    assert [row["kind"] for row in await ledger_rows(service, job.id)] == ["reserve", "refund"]


async def test_an_answer_that_is_not_an_image_is_retried(service, fake_segmind):
    recorder = Recorder(service)
    fake_segmind.faults = ["not-image"]
    job = await service.imagine(actor(), "a red fox", None, target())
    assert isinstance(await recorder.wait_final(job.id), JobDone)


async def test_the_owner_can_cancel_a_queued_job_and_gets_the_credits_back(service, fake_segmind):
    recorder = Recorder(service)
    fake_segmind.latency_s = 0.5
    first = await service.imagine(actor(), "one", None, target())
    waiting = [await service.imagine(actor(), f"job {i}", None, target()) for i in range(4)]
    cancelled = await service.cancel(actor(), waiting[-1].id)
    assert cancelled.state is JobState.CANCELLED
    final = await recorder.wait_final(waiting[-1].id)
    assert isinstance(final, JobFailed) and final.refunded
    kinds = [row["kind"] for row in await ledger_rows(service, waiting[-1].id)]
    assert kinds == ["reserve", "refund"]
    assert first.id != cancelled.id


async def test_someone_else_cannot_cancel_or_delete_a_job(service):
    job = await service.imagine(actor("alice"), "a red fox", None, target())
    with pytest.raises(NotAllowed):
        await service.cancel(actor("mallory"), job.id)
    with pytest.raises(NotAllowed):
        await service.delete(actor("mallory"), job.id)


async def test_the_queue_cap_refuses_with_a_sentence_and_charges_nothing(settings_for):
    service = await build_service(settings_for(quota={"max_queued_per_user": 2}))
    try:
        await service.imagine(actor(), "one", None, target())
        await service.imagine(actor(), "two", None, target())
        with pytest.raises(QueueFull) as refused:
            await service.imagine(actor(), "three", None, target())
        assert "Nothing was charged" in refused.value.sentence()
        assert (await service.quota_status(actor())).balance == 48
    finally:
        await service.stop()


async def test_two_hundred_concurrent_requests_with_ten_credits_give_exactly_ten_jobs(settings_for):
    service = await build_service(
        settings_for(quota={"default_allowance": 10, "max_queued_per_user": 1000})
    )
    try:
        results = await asyncio.gather(
            *(service.imagine(actor(), f"fox {i}", None, target()) for i in range(200)),
            return_exceptions=True,
        )
        jobs = [r for r in results if not isinstance(r, BaseException)]
        refusals = [r for r in results if isinstance(r, InsufficientCredits)]
        assert len(jobs) == 10 and len(refusals) == 190
        assert all("Nothing was charged" in r.sentence() for r in refusals)
        assert (await service.quota_status(actor())).balance == 0
    finally:
        await service.stop()


async def test_two_services_on_one_database_file_share_the_quota_exactly(settings_for):
    settings = settings_for(quota={"default_allowance": 10, "max_queued_per_user": 1000})
    first, second = await build_service(settings), await build_service(settings)
    try:
        results = await asyncio.gather(
            *(svc.imagine(actor(), f"fox {i}", None, target())
              for i in range(60) for svc in (first, second)),
            return_exceptions=True,
        )
        jobs = [r for r in results if isinstance(r, Job)]
        refusals = [r for r in results if isinstance(r, InsufficientCredits)]
        others = [r for r in results if not isinstance(r, Job | InsufficientCredits)]
        assert others == []  # no "database is locked", nor any other failure
        assert len(jobs) == 10 and len(refusals) == 110
        assert all("Nothing was charged" in r.sentence() for r in refusals)
        assert (await first.quota_status(actor())).balance == 0
    finally:
        await first.stop()
        await second.stop()


async def test_a_blocked_user_is_refused(service):
    await service.quota.set_blocked(actor().scope, "alice", True)
    with pytest.raises(UserBlocked):
        await service.imagine(actor(), "a red fox", None, target())


async def test_blocked_terms_are_refused_everywhere_and_cost_nothing(settings_for):
    service = await build_service(settings_for(policy={"blocked_terms": ["gore"]}))
    try:
        with pytest.raises(PolicyError):
            await service.imagine(actor(), "lots of GORE", None, target(), nsfw_allowed=True)
        assert await ledger_rows(service) == []
    finally:
        await service.stop()


async def test_nsfw_terms_are_allowed_only_where_the_channel_allows(settings_for):
    service = await build_service(settings_for(policy={"nsfw_terms": ["nude"]}))
    try:
        with pytest.raises(PolicyError):
            await service.imagine(actor(), "a nude statue", None, target(), nsfw_allowed=False)
        job = await service.imagine(actor(), "a nude statue", None, target(), nsfw_allowed=True)
        assert job.cost == 1
    finally:
        await service.stop()


async def test_without_any_backend_imagine_says_what_to_set(tmp_path):
    service = await build_service(make_settings(tmp_path, None))
    try:
        with pytest.raises(NoBackendConfigured) as refused:
            await service.imagine(actor(), "a red fox", None, target())
        assert "SEGMIND_API_KEY" in refused.value.sentence()
    finally:
        await service.stop()


async def test_reroll_uses_a_new_seed_and_charges_the_presser(service):
    recorder = Recorder(service)
    job = await service.imagine(actor("alice"), "a red fox --seed 5", None, target())
    await recorder.wait_final(job.id)
    again = await service.reroll(actor("bob"), job.id, target())
    assert again.request.seed != 5 and again.request.prompt == "a red fox"
    assert again.actor.user_id == "bob" and again.parent_id == job.id
    assert (await service.quota_status(actor("bob"))).balance == 49


async def test_vary_on_segmind_uses_the_neighbouring_seed_and_info_says_so(service):
    recorder = Recorder(service)
    job = await service.imagine(actor(), "a red fox --seed 5 --n 2", None, target())
    await recorder.wait_final(job.id)
    varied = await service.vary(actor(), job.id, target(), index=1)
    assert varied.request.seed == 7 and varied.request.variation_seed is None
    assert "neighbouring seed" in service.describe_variation(varied)


async def test_edit_keeps_the_seed_and_parameters_with_the_new_prompt(service):
    job = await service.imagine(actor(), "a red fox --seed 5 --ar 16:9 --steps 3", None, target())
    edited = await service.edit(actor(), job.id, "a blue fox", None, target())
    assert edited.request.prompt == "a blue fox"
    assert (edited.request.seed, edited.request.width, edited.request.steps) == (5, 1344, 3)


async def test_a_deleted_job_cannot_be_rerolled(service):
    recorder = Recorder(service)
    job = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait_final(job.id)
    await service.delete(actor(), job.id)
    with pytest.raises(JobNotFound) as refused:
        await service.reroll(actor(), job.id, target())
    assert refused.value.sentence() == "That image no longer exists (it was deleted or expired)."


async def test_flags_in_an_edited_prompt_win_over_the_parents_values(service):
    job = await service.imagine(actor(), "a red fox --seed 5 --steps 3", None, target())
    edited = await service.edit(actor(), job.id, "a blue fox --steps 2 --ar 3:4", None, target())
    assert (edited.request.steps, edited.request.seed) == (2, 5)
    assert (edited.request.width, edited.request.height) == (896, 1152)


async def test_an_edit_that_switches_model_keeps_only_the_seed_size_and_count(service):
    job = await service.imagine(actor(), "a red fox --seed 5 --steps 3 --ar 16:9", None, target())
    edited = await service.edit(actor(), job.id, "a red fox --model kolors", "blur", target())
    r = edited.request
    assert (r.model, r.seed, r.steps, r.width, r.negative_prompt) == ("kolors", 5, 25, 1344, "blur")


async def test_retention_removes_the_images_of_old_jobs_and_keeps_the_jobs(settings_for):
    settings = settings_for(storage={"retention_days": 1})
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    try:
        old, new = [await service.imagine(actor(), prompt, None, target())
                    for prompt in ("a red fox", "a blue fox")]
        for job in (old, new):
            await recorder.wait_final(job.id)
        await service.db.write("UPDATE jobs SET finished_at = finished_at - 2 * 86400 "
                               "WHERE id = ?", (old.id,))

        assert await service.purge_expired() == 1
        assert await service.purge_expired() == 0  # nothing left to remove
        kept_old, kept_new = [await service.jobs.get(job.id) for job in (old, new)]
    finally:
        await service.stop()

    images = settings.storage.path / "images"
    assert kept_old is not None and (kept_old.state, kept_old.images) == (JobState.DONE, ())
    assert not (images / old.id).exists()
    assert kept_new is not None and kept_new.images and all(p.is_file() for p in kept_new.images)
