"""Admin alerts from a running service: each once per period or incident per admin channel,
also when two services share the database; a post that fails is tried again.

The admin channel here is the AdminAlerts port itself, recording what it was given (the chat
tests post to the fake Discord and Slack)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app import build_service
from bot.config import Settings
from bot.core.errors import BudgetExhausted
from bot.core.service import ImagineService
from tests.helpers import Recorder, actor, target

BUDGET = {"limit": 2.0, "warn_at": 0.5, "prices": {"flux-schnell": 1.0}}


class Channel:
    """An admin channel: what was posted to it, by any service."""

    def __init__(self, name: str = "test:admins", failures: int = 0) -> None:
        self.name = name
        self.posts: list[str] = []
        self.failures = failures

    async def post(self, text: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the chat service is down")
        self.posts.append(text)

    def kinds(self) -> list[str]:
        return [post.split(":")[0] for post in self.posts]


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Any]]:
    """start(settings, channel) -> a started service posting alerts to `channel`."""
    started: list[ImagineService] = []

    async def run(settings: Settings, channel: Channel) -> tuple[ImagineService, Recorder]:
        service = await build_service(settings)
        recorder = Recorder(service)
        await service.start()
        assert service.alerts is not None
        service.alerts.add(channel)
        started.append(service)
        return service, recorder

    yield run
    for service in reversed(started):
        if not service.stopping:
            await service.stop()


async def job(service: ImagineService, recorder: Recorder, user: str = "alice") -> None:
    """Run one job to its end, then let the alert check it caused finish."""
    made = await service.imagine(actor(user), "a red fox", None, target())
    await recorder.wait_final(made.id)
    assert service.alerts is not None
    await service.alerts.settled()


async def test_the_budget_alerts_come_once_each_however_many_jobs_follow(settings_for, start):
    channel = Channel()
    service, recorder = await start(settings_for(budget=BUDGET), channel)
    await job(service, recorder)  # 1 of 2: the warning
    await job(service, recorder)  # 2 of 2: used up
    for _ in range(3):
        with pytest.raises(BudgetExhausted):
            await service.imagine(actor(), "more", None, target())
    assert service.alerts is not None
    await service.alerts.settled()

    assert channel.kinds() == ["Budget warning", "Budget used up"]


async def test_two_services_on_one_database_post_each_alert_once_to_a_shared_channel(
        settings_for, start):
    settings = settings_for(budget={**BUDGET, "limit": 4.0})
    first, second = Channel("discord:42"), Channel("discord:42")
    (one, one_rec), (two, two_rec) = await start(settings, first), await start(settings, second)
    for n in range(2):
        await job(one, one_rec, f"a{n}")
        await job(two, two_rec, f"b{n}")

    assert sorted(first.kinds() + second.kinds()) == ["Budget used up", "Budget warning"]


async def test_a_restarted_service_does_not_repeat_an_alert(settings_for, start):
    settings = settings_for(budget=BUDGET)
    channel = Channel()
    service, recorder = await start(settings, channel)
    await job(service, recorder)
    await service.stop()

    again, _ = await start(settings, channel)
    assert again.alerts is not None
    await again.alerts.check()

    assert channel.kinds() == ["Budget warning"]


async def test_low_credits_are_alerted_once_per_incident(settings_for, start, fake_segmind):
    fake_segmind.credits = 10.0
    channel = Channel()
    service, recorder = await start(settings_for(budget={"low_credits": 8.0}), channel)
    for _ in range(4):  # 9, 8, 7, 6 left: low from the third job on
        await job(service, recorder)
    fake_segmind.credits = 100.0  # topped up: the incident is over
    await job(service, recorder)
    fake_segmind.credits = 5.0  # low again: a new incident
    await job(service, recorder)

    assert channel.kinds() == ["Segmind credits are low"] * 2
    assert "7 left, below [budget] low_credits (8)" in channel.posts[0]


async def test_a_backend_failing_most_of_its_last_jobs_is_alerted_once(settings_for, start,
                                                                     fake_segmind):
    fake_segmind.fail_for(400)  # refused at once, not retried: every job fails
    channel = Channel()
    service, recorder = await start(settings_for(), channel)
    for _ in range(7):
        await job(service, recorder)

    assert channel.posts == [
        "Backend segmind is failing: 5 of its last 5 jobs failed. Check `imagine-bot doctor` "
        "and the bot's log."]


async def test_an_alert_whose_post_failed_is_posted_at_the_next_check(settings_for, start):
    channel = Channel(failures=1)
    service, recorder = await start(settings_for(budget={**BUDGET, "limit": 10.0}), channel)
    await job(service, recorder, "a")  # 1 of 10: nothing yet
    for user in "bcde":
        await job(service, recorder, user)  # 5 of 10: the warning, which fails to post

    assert channel.posts == []
    await job(service, recorder, "f")
    assert channel.kinds() == ["Budget warning"]
