"""Fixtures for the reliability tests: loopback Discord and Slack, and bots started against them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord
import pytest
from discord.gateway import DiscordWebSocket
from pydantic import SecretStr

from bot.config import Settings
from tests.chat.running import Bot, bots
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack

DISCORD_TOKEN = "reliability-discord-token-3c9a"
SLACK_ADMIN = "U0ADMIN"
SLACK_MEMBER = "U0MEMBER"


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A loopback Discord (REST and gateway); discord.py's class-level endpoints are put back."""
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord(token=DISCORD_TOKEN) as fake:
        yield fake
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A loopback Slack that knows an admin and a member."""
    users = {SLACK_ADMIN: {"name": "admin", "is_admin": True}, SLACK_MEMBER: {"name": "member"}}
    async with FakeSlack(users=users) as fake:
        yield fake


RunningBot = Bot[Any]
StartBot = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
async def discord_bot(settings_for: Callable[..., Settings], fake_discord: FakeDiscord
                      ) -> AsyncIterator[StartBot]:
    """discord_bot(**sections) -> a service and a Discord adapter on the fakes, stopped after."""
    async def start(**sections: Any) -> RunningBot:
        extra = sections.pop("discord", {})
        settings = settings_for(discord={"api_base_url": fake_discord.api_base_url,
                                         "gateway_url": fake_discord.gateway_url, **extra},
                                **sections)
        settings = settings.model_copy(update={"discord_token": SecretStr(DISCORD_TOKEN)})
        return await started.discord(settings, progress_interval_s=0.5)

    async with bots() as started:
        yield start


@pytest.fixture
async def slack_bot(settings_for: Callable[..., Settings], fake_slack: FakeSlack
                    ) -> AsyncIterator[StartBot]:
    """slack_bot(mode="socket"|"http", **sections) -> a service and a Slack adapter on the fakes."""
    async def start(mode: str = "socket", **sections: Any) -> RunningBot:
        extra = sections.pop("slack", {})
        settings = settings_for(slack={"api_base_url": fake_slack.base_url, **extra}, **sections)
        secrets = {"slack_bot_token": SecretStr(BOT_TOKEN),
                   "slack_signing_secret": SecretStr(SIGNING_SECRET)}
        if mode == "socket":
            secrets["slack_app_token"] = SecretStr(APP_TOKEN)
        settings = settings.model_copy(update=secrets)
        return await started.slack(settings)

    async with bots() as started:
        yield start

