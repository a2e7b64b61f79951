"""Handlers that start jobs (/imagine, Reroll, Vary, the Edit modal) and the other buttons."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.chat.actions import (
    Action,
    Button,
    Cancelled,
    Deleted,
    OpenEditor,
    Outcome,
    ShowInfo,
    Started,
    perform,
)
from bot.chat.discord._convert import actor_for, nsfw_allowed, target_for
from bot.chat.discord._delivery import Delivery
from bot.chat.discord._replies import guarded
from bot.chat.discord._ui import MODAL_PATTERN, edit_modal, info_embed, modal_values
from bot.config import DiscordSettings
from bot.core.jobs import Actor, Job, ReplyTarget
from bot.core.service import ImagineService

log = logging.getLogger("bot.chat.discord")

_STARTS_A_JOB = (Action.REROLL, Action.VARY, Action.AGAIN)  # they defer and show progress

Submit = Callable[[Actor, ReplyTarget], Awaitable[Job]]


class JobHandlers:
    """Defer at once, hand the request to the service, and let Delivery report on the job."""

    def __init__(self, service: ImagineService, settings: DiscordSettings,
                 delivery: Delivery) -> None:
        self.service = service
        self.settings = settings
        self.delivery = delivery

    async def start(self, interaction: discord.Interaction, what: str, submit: Submit,
                    reply_to: int | None = None, *, private: bool = False) -> None:
        """Defer ('thinking', public unless `private` or pressed on a private result), submit
        the job, and track its progress message."""
        # A button on a result only its owner sees keeps what it makes private too.
        private = private or bool(interaction.message and interaction.message.flags.ephemeral)

        async def run() -> None:
            response = await interaction.response.defer(thinking=True, ephemeral=private)
            message_id = response.message_id if response is not None else None
            actor = actor_for(interaction, self.settings)
            target = target_for(interaction, message_id, reply_to, private=private)
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

    async def on_button(self, interaction: discord.Interaction, button: Button) -> None:
        """A press on a job's button (also on messages sent before a restart)."""
        reply_to = interaction.message.id if interaction.message is not None else None
        nsfw = nsfw_allowed(interaction)

        async def act(actor: Actor, target: ReplyTarget) -> Outcome:
            return await perform(self.service, actor, button.action, button.job_id, target,
                                 index=button.index or 0, nsfw_allowed=nsfw)

        if button.action in _STARTS_A_JOB:
            async def submit(actor: Actor, target: ReplyTarget) -> Job:
                outcome = await act(actor, target)
                assert isinstance(outcome, Started)  # these actions always start a job
                return outcome.job

            await self.start(interaction, button.action, submit, reply_to)
            return

        async def run() -> None:
            actor = actor_for(interaction, self.settings)
            outcome = await act(actor, target_for(interaction, reply_to=reply_to))
            await self._show(interaction, actor, outcome)

        await guarded(interaction, button.action, run)

    async def _show(self, interaction: discord.Interaction, actor: Actor,
                    outcome: Outcome) -> None:
        if isinstance(outcome, OpenEditor):
            await interaction.response.send_modal(edit_modal(outcome.job))
        elif isinstance(outcome, ShowInfo):
            await interaction.response.send_message(embed=info_embed(outcome.fields),
                                                    ephemeral=True)
        elif isinstance(outcome, Deleted):
            await interaction.response.edit_message(
                content=f"Deleted by <@{actor.user_id}>.", embeds=[], attachments=[], view=None,
                allowed_mentions=discord.AllowedMentions.none())
        elif isinstance(outcome, Cancelled):  # the job's own message says so (its events)
            await interaction.response.defer()

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

