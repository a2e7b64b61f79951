"""Replies that end a Discord handler: one ephemeral sentence, and the guard around handlers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from bot.chat.guard import guarded as chat_guarded

log = logging.getLogger("bot.chat.discord")


async def tell(interaction: discord.Interaction, sentence: str) -> None:
    """One ephemeral sentence; a public 'thinking' response left by a deferral is removed."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(
                sentence, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
            return
        await interaction.followup.send(sentence, ephemeral=True,
                                        allowed_mentions=discord.AllowedMentions.none())
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            await interaction.delete_original_response()
    except discord.HTTPException as error:
        log.warning("could not tell the user about an error (HTTP %s)", error.status)
    except Exception as error:  # a closed client at shutdown, say: never raise from here
        log.warning("could not tell the user about an error (%s)", type(error).__name__)


async def guarded(interaction: discord.Interaction, what: str,
                  action: Callable[[], Awaitable[None]]) -> None:
    """Run a handler under the shared guard, telling its sentence ephemerally."""
    await chat_guarded(f"discord {what}", action, lambda sentence: tell(interaction, sentence))
