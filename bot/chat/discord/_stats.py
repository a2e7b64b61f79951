"""/stats for admins: the summary and the chart, answered only to the admin who asked."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.utils import escape_markdown, escape_mentions

from bot.chat.discord._convert import PLATFORM, actor_for
from bot.chat.discord._replies import guarded
from bot.chat.stats import mention_on, stats_answer
from bot.core.errors import NotAllowed
from bot.core.stats import DEFAULT_SINCE, SINCE_CHOICES, parse_since

if TYPE_CHECKING:
    from bot.chat.discord._adapter import DiscordAdapter

NOT_ADMIN = "Only members with Manage Server or the bot's configured admins can use /stats."
MAX_MESSAGE = 2000


def _plain(text: str) -> str:
    return escape_mentions(escape_markdown(text))


def register(tree: app_commands.CommandTree[Any], adapter: DiscordAdapter) -> None:
    """Add /stats to `tree`."""

    @app_commands.command(name="stats", description="Jobs, images, money and speed, with a chart.")
    @app_commands.describe(since="How far back to look (default 7d)")
    @app_commands.choices(since=[app_commands.Choice(name=c, value=c) for c in SINCE_CHOICES])
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def stats(interaction: discord.Interaction, since: str | None = None) -> None:
        async def run() -> None:
            if not actor_for(interaction, adapter.settings).is_admin:
                raise NotAllowed(NOT_ADMIN)
            parse_since(since or DEFAULT_SINCE, datetime.now(UTC))  # a forged value: a sentence
            # The chart takes longer than Discord's three seconds on a cold start.
            await interaction.response.defer(ephemeral=True, thinking=True)
            answer = await stats_answer(adapter.service, since,
                                        name=mention_on(PLATFORM, _plain))
            files = ([discord.File(io.BytesIO(answer.chart), filename="stats.png")]
                     if answer.chart else [])
            await interaction.followup.send(answer.text[:MAX_MESSAGE], files=files,
                                            ephemeral=True,
                                            allowed_mentions=discord.AllowedMentions.none())

        await guarded(interaction, "/stats", run)

    tree.add_command(stats)
