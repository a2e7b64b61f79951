"""The budget holds across real processes sharing one database: `imagine-bot imagine` run
several times at once against a limit admits exactly the limit."""

from __future__ import annotations

import asyncio

from tests.test_cli import cli_env, run_cli


async def test_processes_started_together_admit_exactly_the_budget_between_them(
        tmp_path, fake_segmind):
    fake_segmind.latency_s = 0.5  # the admitted jobs are still running when the others ask
    env = {**cli_env(tmp_path / "data", fake_segmind.base_url),
           "IMAGINE_BUDGET__LIMIT": "2", "IMAGINE_BUDGET__PRICES": '{"flux-schnell": 1.0}'}

    results = await asyncio.gather(*(
        run_cli("imagine", f"a fox {n}", "--user", f"user{n}", env=env, seconds=120)
        for n in range(4)))

    statuses = sorted(status for status, _, _ in results)
    refusals = [err for status, _, err in results if status == 1]
    assert statuses == [0, 0, 1, 1]
    assert all("The team's image budget for this month is used up until" in err
               and "Traceback" not in err for err in refusals)
    assert fake_segmind.images_served == 2
