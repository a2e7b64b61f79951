"""Starting the adapter: the token comes from DISCORD_TOKEN and a bad one fails plainly."""

from __future__ import annotations

import discord
import pytest
from pydantic import SecretStr

from bot.app import build_service
from bot.chat.discord import DiscordAdapter
from bot.config import ConfigError


async def test_a_missing_token_is_named_at_start(discord_settings):
    settings = discord_settings().model_copy(update={"discord_token": None})
    service = await build_service(settings)
    try:
        with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
            DiscordAdapter(service, settings)
    finally:
        await service.stop()


async def test_a_wrong_token_fails_the_start_without_being_shown(discord_settings, caplog):
    wrong = "wrong-token-0a9f"
    settings = discord_settings().model_copy(update={"discord_token": SecretStr(wrong)})
    service = await build_service(settings)
    adapter = DiscordAdapter(service, settings)
    try:
        with pytest.raises(discord.LoginFailure) as failure:
            await adapter.start(ready_within_s=5)
    finally:
        await service.stop()

    assert wrong not in str(failure.value)
    assert wrong not in caplog.text
