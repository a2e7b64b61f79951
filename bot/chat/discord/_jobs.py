"""Handlers that start jobs (/imagine, Reroll, Vary, the Edit modal) and the other buttons."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.chat.discord._convert import actor_for, nsfw_allowed, target_for
from bot.chat.discord._delivery import Delivery
from bot.chat.discord._replies import guarded
from bot.chat.discord._ui import MODAL_PATTERN, edit_modal, info_embed, modal_values
from bot.config import DiscordSettings
from bot.core.jobs import Actor, Job, ReplyTarget
from bot.core.service import ImagineService

log = logging.getLogger("bot.chat.discord")

Submit = Callable[[Actor, ReplyTarget], Awaitable[Job]]


class JobHandlers:
    """Defer at once, hand the request to the service, and let Delivery report on the job."""

    def __init__(self, service: ImagineService, settings: DiscordSettings,
                 delivery: Delivery) -> None:
        self.service = service
        self.settings = settings
        self.delivery = delivery

    async def start(self, interaction: discord.Interaction, what: str, submit: Submit,
                    reply_to: int | None = None) -> None:
        """Defer (public 'thinking'), submit the job, and track its progress message."""
        async def run() -> None:
            response = await interaction.response.defer(thinking=True)
            message_id = response.message_id if response is not None else None
            actor = actor_for(interaction, self.settings)
            target = target_for(interaction, message_id, reply_to)
            job = await submit(actor, target)
            self.delivery.track(job, interaction)
            if message_id is None:
                await self._store_message_id(interaction, job, target)

        await guarded(interaction, what, run)

    async def _store_message_id(self, interaction: discord.Interaction, job: Job,
                                target: ReplyTarget) -> None:
        """Ask for the original response's id (when the callback did not say) and store it."""
        try:
            message = await interaction.original_response()
            await self.service.update_target(
                job.id, dataclasses.replace(target, message_id=str(message.id)))
        except Exception:  # the job runs anyway; only edits after a restart are lost
            log.exception("could not store the progress message of job %s", job.id)

    async def on_button(self, interaction: discord.Interaction, action: str, job_id: str,
                        index: int | None) -> None:
        """A press on a result button (also for messages sent before a restart)."""
        nsfw = nsfw_allowed(interaction)
        reply_to = interaction.message.id if interaction.message is not None else None
        service = self.service
        if action == "reroll":
            await self.start(interaction, "reroll", lambda a, t: service.reroll(
                a, job_id, t, nsfw_allowed=nsfw), reply_to)
        elif action == "vary":
            await self.start(interaction, "vary", lambda a, t: service.vary(
                a, job_id, t, index=index or 0, nsfw_allowed=nsfw), reply_to)
        elif action == "edit":
            await guarded(interaction, "edit", lambda: self._open_editor(interaction, job_id))
        elif action == "info":
            await guarded(interaction, "info", lambda: self._info(interaction, job_id))
        elif action == "delete":
            await guarded(interaction, "delete", lambda: self._delete(interaction, job_id))

    async def _open_editor(self, interaction: discord.Interaction, job_id: str) -> None:
        job = await self.service.get_job(job_id)
        await interaction.response.send_modal(edit_modal(job))

    async def _info(self, interaction: discord.Interaction, job_id: str) -> None:
        job = await self.service.get_job(job_id)
        embed = info_embed(job, self.service.describe_variation(job))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def _delete(self, interaction: discord.Interaction, job_id: str) -> None:
        actor = actor_for(interaction, self.settings)
        await self.service.delete(actor, job_id)
        await interaction.response.edit_message(
            content=f"Deleted by <@{actor.user_id}>.", embeds=[], attachments=[], view=None,
            allowed_mentions=discord.AllowedMentions.none())

    async def on_modal_submit(self, interaction: discord.Interaction) -> None:
        """The Edit modal's submit, matched by custom id (so it survives a restart too)."""
        data: dict[str, Any] = dict(interaction.data or {})
        match = MODAL_PATTERN.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        job_id = match["job_id"]
        values = modal_values(data.get("components", []))
        prompt = values.get("prompt", "")
        negative = values.get("negative_prompt", "").strip() or None
        nsfw = nsfw_allowed(interaction)
        reply_to = interaction.message.id if interaction.message is not None else None
        await self.start(interaction, "edit", lambda a, t: self.service.edit(
            a, job_id, prompt, negative, t, nsfw_allowed=nsfw), reply_to)

