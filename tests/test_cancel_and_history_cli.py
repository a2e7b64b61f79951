"""`imagine-bot cancel` and `imagine-bot history`, run as real processes."""

from __future__ import annotations

from bot.app import build_service
from bot.core.jobs import JobState
from tests.conftest import make_settings
from tests.helpers import actor, ledger_rows, target
from tests.test_cli import cli_env, run_cli


async def test_cancel_refunds_a_job_left_waiting_in_the_database(tmp_path, fake_segmind):
    data = tmp_path / "data"
    service = await build_service(make_settings(data, fake_segmind.base_url))
    job = await service.imagine(actor(), "a red fox", None, target())  # never started: it waits
    await service.stop()

    status, out, err = await run_cli("cancel", job.id, env=cli_env(data, fake_segmind.base_url))

    assert status == 0, err
    assert out == f"Job {job.id} cancelled; its owner got 1 credit back.\n"
    service = await build_service(make_settings(data, fake_segmind.base_url))
    try:
        assert (await service.get_job(job.id)).state is JobState.CANCELLED
        assert [row["kind"] for row in await ledger_rows(service, job.id)] == ["reserve", "refund"]
    finally:
        await service.stop()


async def test_cancel_of_an_unknown_job_is_one_sentence_and_exit_1(tmp_path):
    status, out, err = await run_cli("cancel", "nosuchjob", env=cli_env(tmp_path, None))

    assert (status, out) == (1, "")
    assert err.splitlines()[-1] == "That image no longer exists (it was deleted or expired)."


async def test_history_lists_a_users_jobs_in_a_workspace(tmp_path, fake_segmind):
    data = tmp_path / "data"
    service = await build_service(make_settings(data, fake_segmind.base_url))
    job = await service.imagine(actor("ann", "team1"), "a red fox --seed 5", None, target())
    await service.stop()

    status, out, err = await run_cli("history", "--scope", "test:team1", "--user", "ann",
                                     env=cli_env(data, fake_segmind.base_url))

    assert status == 0, err
    assert out.startswith("1. “a red fox” · flux-schnell · 1024×1024 · seed 5 · 1 credit · "
                          "queued · ")
    assert out.rstrip().endswith(f"job {job.id}")


async def test_history_with_a_limit_out_of_range_is_refused_with_exit_2(tmp_path):
    status, _, err = await run_cli("history", "--limit", "0", env=cli_env(tmp_path, None))

    assert status == 2 and err.splitlines()[-1] == "--limit must be between 1 and 1000."
