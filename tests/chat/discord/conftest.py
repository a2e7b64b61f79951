"""Fixtures for the Discord adapter: a FakeDiscord, and bots (service + adapter) pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord
import pytest
from discord.gateway import DiscordWebSocket
from pydantic import SecretStr

from bot.chat.discord import DiscordAdapter
from bot.config import Settings
from tests.chat.running import Bot as RunningBot
from tests.chat.running import bots
from tests.fakes.discord import MANAGE_GUILD, MEMBER_PERMISSIONS, FakeDiscord, FakeUser

BOT_TOKEN = "fake-bot-token-7d1e.secret"
ANN = FakeUser(1001, "ann")
BOB = FakeUser(1002, "bob")
ADA = FakeUser(1003, "ada", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)


@pytest.fixture(autouse=True)
def _restore_discord_endpoints() -> Any:
    """The adapter sets discord.py's class-level endpoints; put the real ones back."""
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A loopback Discord: REST and gateway on one port."""
    async with FakeDiscord(token=BOT_TOKEN) as fake:
        yield fake


@pytest.fixture
def discord_settings(settings_for: Callable[..., Settings],
                     fake_discord: FakeDiscord) -> Callable[..., Settings]:
    """discord_settings(discord={...}, quota={...}) -> Settings aimed at both fakes."""

    def build(**sections: Any) -> Settings:
        extra = sections.pop("discord", {})
        settings = settings_for(discord={"api_base_url": fake_discord.api_base_url,
                                         "gateway_url": fake_discord.gateway_url, **extra},
                                **sections)
        return settings.model_copy(update={"discord_token": SecretStr(BOT_TOKEN)})

    return build


Bot = RunningBot[DiscordAdapter]
StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def start_bot(discord_settings: Callable[..., Settings]) -> AsyncIterator[StartBot]:
    """start_bot(settings=None) -> a started Bot, stopped after the test."""
    async with bots() as started:
        async def start(settings: Settings | None = None, **options: Any) -> Bot:
            return await started.discord(settings or discord_settings(), **options)

        yield start


@pytest.fixture
async def bot(start_bot: StartBot) -> Bot:
    """One running bot with default settings."""
    return await start_bot()


def job_id_of(message: dict[str, Any]) -> str:
    """The job id a result message carries in its buttons."""
    for row in message.get("components", []):
        for component in row.get("components", []):
            parts = component.get("custom_id", "").split(":")
            if parts[:2] == ["imagine", "reroll"]:
                return parts[2]
    raise AssertionError(f"no result buttons on {message}")


def custom_ids(message: dict[str, Any]) -> list[str]:
    """Every button custom id on a message, row by row."""
    return [c["custom_id"] for row in message.get("components", [])
            for c in row.get("components", [])]

