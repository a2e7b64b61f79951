"""The slash commands: /imagine, /quota, /queue, /history and /quota-admin, with choices and
autocomplete."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.chat.actions import history_rows
from bot.chat.discord import _settings
from bot.chat.discord._convert import actor_for, nsfw_allowed
from bot.chat.discord._replies import guarded, tell
from bot.chat.discord._ui import view_of
from bot.chat.guard import UNEXPECTED
from bot.chat.render import history_lines, queue_lines
from bot.core.admin import ADMIN_ACTIONS, parse_admin, run_admin
from bot.core.catalog import SEED_MAX, Catalog
from bot.core.errors import NotAllowed

if TYPE_CHECKING:
    from bot.chat.discord._adapter import DiscordAdapter

log = logging.getLogger("bot.chat.discord")

# Wide bounds for Discord's own input checks; the core checks each model's real limits.
Seed = app_commands.Range[int, 0, SEED_MAX]
Steps = app_commands.Range[int, 1, 150]
Cfg = app_commands.Range[float, 0.0, 30.0]
Samples = app_commands.Range[int, 1, 10]
Text = app_commands.Range[str, 1, 2000]
NOT_ADMIN = "Only members with Manage Server or the bot's configured admins can use /quota-admin."
_PERIODS = [app_commands.Choice(name=p, value=p) for p in ("day", "week", "month")]


def register(tree: app_commands.CommandTree[Any], adapter: DiscordAdapter) -> None:
    """Add the commands to `tree`, with choices taken from the service's catalog."""
    catalog = adapter.service.catalog
    models = [app_commands.Choice(name=name, value=name) for name in catalog.names][:25]
    ratios = _ratio_choices(catalog)
    jobs = adapter.jobs

    @app_commands.command(name="imagine", description="Make images from a prompt.")
    @app_commands.describe(
        prompt="What to draw; flags such as --ar 16:9 --seed 5 --no blur work too",
        model="The model (each has its own limits and cost)",
        aspect_ratio="The shape of the image",
        negative_prompt="What to keep out of the image (chroma and kolors)",
        seed="Seed for a repeatable result", steps="Denoising steps", cfg="Guidance scale",
        samples="How many images", sampler="Sampler (the model's own list)",
        scheduler="Scheduler (the model's own list)",
    )
    @app_commands.choices(model=models, aspect_ratio=ratios)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def imagine(interaction: discord.Interaction, prompt: Text,
                      model: str | None = None, aspect_ratio: str | None = None,
                      negative_prompt: Text | None = None, seed: Seed | None = None,
                      steps: Steps | None = None, cfg: Cfg | None = None,
                      samples: Samples | None = None, sampler: str | None = None,
                      scheduler: str | None = None) -> None:
        options = {"model": model, "aspect_ratio": aspect_ratio,
                   "negative_prompt": negative_prompt, "seed": seed, "steps": steps,
                   "cfg": cfg, "samples": samples, "sampler": sampler, "scheduler": scheduler}
        given = {k: v for k, v in options.items() if v is not None}
        nsfw = nsfw_allowed(interaction)
        private = await _settings.private_results(adapter, interaction)
        await jobs.start(interaction, "/imagine", lambda actor, target: adapter.service.imagine(
            actor, prompt, given, target, nsfw_allowed=nsfw), private=private)

    @imagine.autocomplete("sampler")
    async def _samplers(interaction: discord.Interaction, current: str
                        ) -> list[app_commands.Choice[str]]:
        spec = _chosen_model(interaction, catalog)
        return _matching(spec.samplers if spec else (), current)

    @imagine.autocomplete("scheduler")
    async def _schedulers(interaction: discord.Interaction, current: str
                          ) -> list[app_commands.Choice[str]]:
        spec = _chosen_model(interaction, catalog)
        return _matching(spec.schedulers if spec else (), current)

    @app_commands.command(name="quota", description="Your credits: balance, allowance, reset.")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def quota(interaction: discord.Interaction) -> None:
        async def run() -> None:
            status = await adapter.service.quota_status(actor_for(interaction, adapter.settings))
            await interaction.response.send_message(
                status.sentence(), ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none())

        await guarded(interaction, "/quota", run)

    @app_commands.command(name="queue", description="Your waiting and running images.")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def queue(interaction: discord.Interaction) -> None:
        async def run() -> None:
            view = await adapter.service.queue(actor_for(interaction, adapter.settings))
            await interaction.response.send_message(
                _plain("\n".join(queue_lines(view))), ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none())

        await guarded(interaction, "/queue", run)

    @app_commands.command(name="history", description="Your last 10 images, to run one again.")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def history(interaction: discord.Interaction) -> None:
        async def run() -> None:
            jobs = await adapter.service.history(actor_for(interaction, adapter.settings))
            await interaction.response.send_message(
                _plain("\n".join(history_lines(jobs))), ephemeral=True,
                view=view_of(history_rows(jobs)) or discord.utils.MISSING,
                allowed_mentions=discord.AllowedMentions.none())

        await guarded(interaction, "/history", run)

    @app_commands.command(name="quota-admin", description="Manage this server's credits.")
    @app_commands.describe(
        action="What to do", user="The member it applies to (not for top / set-workspace)",
        amount="Credits: a number, unlimited or default (for top: how many rows)",
        period="The allowance period (set, set-workspace)",
    )
    @app_commands.choices(
        action=[app_commands.Choice(name=a, value=a) for a in ADMIN_ACTIONS], period=_PERIODS)
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def quota_admin(interaction: discord.Interaction, action: str,
                          user: discord.User | None = None, amount: str | None = None,
                          period: str | None = None) -> None:
        async def run() -> None:
            actor = actor_for(interaction, adapter.settings)
            if not actor.is_admin:  # default_member_permissions can be overridden by a server
                raise NotAllowed(NOT_ADMIN)
            words = [action] + [str(w) for w in (user.id if user else None, amount, period) if w]
            text = await run_admin(adapter.service.quota, actor.scope, parse_admin(words),
                                   mention="<@{user}>")
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

        await guarded(interaction, "/quota-admin", run)

    tree.add_command(imagine)
    tree.add_command(quota)
    tree.add_command(quota_admin)
    tree.add_command(queue)
    tree.add_command(history)
    _settings.register(tree, adapter)  # /settings

    @tree.error
    async def _on_error(interaction: discord.Interaction,
                        error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CheckFailure):
            await tell(interaction, "You cannot use that command here.")
            return
        log.error("app command failed", exc_info=error)
        await tell(interaction, UNEXPECTED)


def _ratio_choices(catalog: Catalog) -> list[app_commands.Choice[str]]:
    spec = catalog.get(catalog.default_model) or catalog.models[0]
    choices = []
    for preset in spec.presets():
        words = preset.label.split()
        name = " ".join(words[:2]) if len(words) > 1 else preset.ratio
        choices.append(app_commands.Choice(name=name, value=preset.ratio))
    return choices[:25]


def _chosen_model(interaction: discord.Interaction, catalog: Catalog) -> Any:
    chosen = getattr(interaction.namespace, "model", None)
    return catalog.get(str(chosen)) if chosen else catalog.get(catalog.default_model)


def _matching(names: tuple[str, ...], current: str) -> list[app_commands.Choice[str]]:
    typed = current.strip().lower()
    return [app_commands.Choice(name=n, value=n) for n in names if typed in n][:25]


def _plain(text: str) -> str:
    """Users' prompts as plain text (no markdown, no masked links), within Discord's limit."""
    text = discord.utils.escape_markdown(text, ignore_links=False)
    return text if len(text) <= 2000 else text[:1999] + "…"
