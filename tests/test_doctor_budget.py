"""`imagine-bot doctor` shows the budget and the same alerts the bot posts to admins, without
failing for them and without recording them as posted."""

from __future__ import annotations

import io

from bot.app import build_service
from bot.config import Settings
from bot.doctor import run_doctor
from tests.helpers import Recorder, actor, target

BUDGET = {"limit": 1.0, "warn_at": 0.5, "low_credits": 5000.0, "prices": {"flux-schnell": 1.0}}


async def spend_one(settings: Settings) -> None:
    """One Segmind job, run to its end by a service that then stops."""
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    try:
        job = await service.imagine(actor(), "a red fox", None, target())
        await recorder.wait_final(job.id)
    finally:
        await service.stop()


async def doctor(settings: Settings) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = await run_doctor(settings, out=out)
    return status, out.getvalue().splitlines()


async def test_doctor_prints_the_budget_and_every_alert_that_holds_and_still_passes(
        settings_for):
    settings = settings_for(budget=BUDGET)
    await spend_one(settings)

    status, lines = await doctor(settings)

    assert status == 0, lines
    [budget] = [line for line in lines if line.startswith("[--  ] budget: ")]
    assert budget.startswith("[--  ] budget: 1 of 1 Segmind credits spent this month (100%)")
    alerts = [line.removeprefix("[--  ] ALERT: ").split(":")[0] for line in lines
              if "ALERT: " in line]
    assert alerts == ["Budget warning", "Budget used up", "Segmind credits are low"]


async def test_doctor_records_no_alert_as_posted(settings_for):
    settings = settings_for(budget=BUDGET)
    await spend_one(settings)
    await doctor(settings)

    service = await build_service(settings)
    try:
        rows = await service.db.read("SELECT COUNT(*) FROM alerts_sent")
    finally:
        await service.stop()
    assert rows[0][0] == 0


async def test_under_the_limit_the_budget_line_passes(settings_for):
    status, lines = await doctor(settings_for(budget={"limit": 50.0}))

    assert status == 0
    assert any(line.startswith("[ok  ] budget: 0 of 50 Segmind credits spent this month (0%)")
               for line in lines)
