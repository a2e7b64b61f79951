"""/settings: your defaults for /imagine (or, with server:True, the server's, for admins)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.chat.discord._convert import actor_for
from bot.chat.discord._replies import guarded
from bot.chat.settings import SettingsCommand, run_settings
from bot.core.defaults import LABELS, SETTINGS, Visibility
from bot.core.errors import SettingError

if TYPE_CHECKING:
    from bot.chat.discord._adapter import DiscordAdapter

log = logging.getLogger("bot.chat.discord")

# Wide bounds for Discord's own input checks; the core checks the model's real limits.
Steps = app_commands.Range[int, 1, 150]
Cfg = app_commands.Range[float, 0.0, 30.0]
Text = app_commands.Range[str, 1, 2000]
VISIBILITY_READ_S = 1.0  # /imagine must defer within 3 s: past this, results go to the channel


def register(tree: app_commands.CommandTree[Any], adapter: DiscordAdapter) -> None:
    """Add /settings to `tree`, with choices from the service's catalog."""
    catalog = adapter.service.catalog
    models = [app_commands.Choice(name=name, value=name) for name in catalog.names][:25]
    spec = catalog.get(catalog.default_model) or catalog.models[0]
    ratios = [app_commands.Choice(name=p.label, value=p.ratio) for p in spec.presets()][:25]
    formats = [app_commands.Choice(name=f, value=f) for f in ("png", "jpeg", "webp")]
    shown = [app_commands.Choice(name="in the channel", value=Visibility.CHANNEL.value),
             app_commands.Choice(name="only to me", value=Visibility.ME.value)]
    resets = [app_commands.Choice(name="all", value="all")] + [
        app_commands.Choice(name=LABELS[name], value=LABELS[name]) for name in SETTINGS]

    @app_commands.command(name="settings",
                          description="Your defaults for /imagine; no options shows them.")
    @app_commands.describe(
        model="Your default model", aspect="Your default aspect ratio",
        steps="Default steps (checked against your model)", cfg="Default guidance scale",
        negative="Default negative prompt (chroma, kolors)", format="Default image format",
        visibility="Where your results go", reset="Forget one default, or all",
        server="Show or change the server's defaults instead (admins change them)",
    )
    @app_commands.choices(model=models, aspect=ratios, format=formats, visibility=shown,
                          reset=resets)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def settings(interaction: discord.Interaction, model: str | None = None,
                       aspect: str | None = None, steps: Steps | None = None,
                       cfg: Cfg | None = None, negative: Text | None = None,
                       format: str | None = None, visibility: str | None = None,
                       reset: str | None = None, server: bool = False) -> None:
        async def run() -> None:
            given = {"model": model, "aspect_ratio": aspect, "steps": steps, "cfg": cfg,
                     "negative_prompt": negative, "image_format": format,
                     "visibility": visibility}
            values = {name: value for name, value in given.items() if value is not None}
            if values and reset:
                raise SettingError("Give either settings to change or reset, not both.")
            if reset:
                names = () if reset == "all" else (reset,)
                command = SettingsCommand("reset", server, names=tuple(
                    n for n in SETTINGS if LABELS[n] in names))
            else:
                command = SettingsCommand("set" if values else "show", server, values)
            answer = await run_settings(adapter.service, actor_for(interaction, adapter.settings),
                                        command)
            await interaction.response.send_message(
                answer[:2000], ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

        await guarded(interaction, "/settings", run)

    tree.add_command(settings)


async def private_results(adapter: DiscordAdapter, interaction: discord.Interaction) -> bool:
    """Whether the asker chose "only to me" (read before deferring, so quickly: a slow
    database means the channel, as before /settings)."""
    actor = actor_for(interaction, adapter.settings)
    try:
        async with asyncio.timeout(VISIBILITY_READ_S):
            return await adapter.service.user_settings.visibility(actor) is Visibility.ME
    except TimeoutError:
        log.warning("reading the visibility of user %s took over %g s; posting in the channel",
                    actor.user_id, VISIBILITY_READ_S)
    except Exception:  # the request itself will meet the same fault and say so
        log.exception("could not read the visibility of user %s", actor.user_id)
    return False
