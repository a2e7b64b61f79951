"""Command sync: scopes no longer used are emptied, and an unchanged command set is not re-sent."""

from __future__ import annotations

from typing import Any

from bot.chat.discord._sync import record_path
from tests.fakes.discord import FakeDiscord

GUILD = str(FakeDiscord.GUILD_ID)


def names(commands: list[dict[str, Any]]) -> set[str]:
    """The command names of one scope."""
    return {c["name"] for c in commands}


async def test_switching_to_guild_ids_clears_the_global_commands(
        start_bot, discord_settings, fake_discord):
    first = await start_bot()
    synced = names(fake_discord.commands[None])
    await first.stop()

    await start_bot(discord_settings(discord={"guild_ids": [FakeDiscord.GUILD_ID]}))

    assert "imagine" in synced
    assert fake_discord.commands[None] == []
    assert names(fake_discord.commands[GUILD]) == synced


async def test_a_server_dropped_from_guild_ids_has_its_commands_cleared(
        start_bot, discord_settings, fake_discord):
    first = await start_bot(discord_settings(discord={"guild_ids": [FakeDiscord.GUILD_ID]}))
    synced = names(fake_discord.commands[GUILD])
    await first.stop()

    await start_bot(discord_settings(discord={"guild_ids": []}))

    assert fake_discord.commands[GUILD] == []
    assert names(fake_discord.commands[None]) == synced


async def test_a_first_start_clears_server_commands_that_an_older_version_left(
        start_bot, discord_settings, fake_discord):
    settings = discord_settings(discord={"guild_ids": [FakeDiscord.GUILD_ID]})
    first = await start_bot(settings)
    await first.stop()
    record_path(settings.storage.path).unlink()  # as after a version that kept no record

    await start_bot(discord_settings(discord={"guild_ids": []}))

    assert fake_discord.commands[GUILD] == []
    assert "imagine" in names(fake_discord.commands[None])


async def test_a_restart_with_the_same_commands_sends_no_sync(start_bot, fake_discord):
    first = await start_bot()
    sent = len(fake_discord.requests("command_sync"))
    await first.stop()

    await start_bot()  # commands are synced during start(), before it returns

    assert sent == 1
    assert len(fake_discord.requests("command_sync")) == sent


async def test_a_changed_command_set_is_synced_again(start_bot, discord_settings, fake_discord):
    first = await start_bot()
    await first.stop()

    await start_bot(discord_settings(catalog={"allowed_models": ["flux-schnell", "kolors"]}))

    [_, again] = fake_discord.requests("command_sync")
    imagine = next(c for c in again.payload["items"] if c["name"] == "imagine")
    model = next(o for o in imagine["options"] if o["name"] == "model")
    assert [c["value"] for c in model["choices"]] == ["flux-schnell", "kolors"]


async def test_commands_deleted_outside_the_bot_are_synced_again(start_bot, fake_discord):
    first = await start_bot()
    synced = names(fake_discord.commands[None])
    await first.stop()
    fake_discord.commands.clear()  # as when someone removed them in the Developer Portal

    await start_bot()

    assert names(fake_discord.commands[None]) == synced
