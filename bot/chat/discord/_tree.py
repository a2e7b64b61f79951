"""A command tree that refuses malformed option values with a sentence.

discord.py turns NUMBER and INTEGER options into numbers while it builds the command's
namespace, before any handler of ours runs; a value that is not a number (only a forged
payload carries one) would leave the interaction unanswered. interaction_check runs first.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger("bot.chat.discord")

_INTEGER, _NUMBER = 4, 10


class CheckedTree(app_commands.CommandTree[Any]):
    """Answers an option of the wrong type with one ephemeral sentence."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """False (after answering) when a numeric option does not hold a number."""
        data: Any = interaction.data or {}
        bad = _first_bad_option(data.get("options") or [])
        if bad is None:
            return True
        log.warning("refused a forged %s option from user %s", bad, interaction.user.id)
        await interaction.response.send_message(
            f"{bad[:30]} must be a number; nothing was queued or charged.", ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        return False


def _first_bad_option(options: list[Any]) -> str | None:
    for option in options:
        if not isinstance(option, dict):
            return "an option"
        value, kind = option.get("value"), option.get("type")
        if option.get("focused"):
            continue  # autocomplete: the value is half-typed on purpose
        if kind == _INTEGER and (isinstance(value, bool) or not isinstance(value, int)):
            return str(option.get("name", "an option"))
        if kind == _NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
            return str(option.get("name", "an option"))
        nested = _first_bad_option(option.get("options") or [])
        if nested is not None:
            return nested
    return None
