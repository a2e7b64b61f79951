"""The service's listener for Discord jobs: progress edits, the result message, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import discord

from bot.chat.discord._convert import InteractionState, only_user, token_valid
from bot.chat.discord._files import attachments
from bot.chat.discord._ui import result_embed, result_view
from bot.chat.render import progress_text
from bot.core.jobs import (
    Job,
    JobDone,
    JobEvent,
    JobFailed,
    JobHandedBack,
    JobQueued,
    JobRunning,
    ReplyTarget,
)
from bot.core.service import ImagineService

log = logging.getLogger("bot.chat.discord")

_ACTION_WORDS = {"imagine": "", "reroll": "rerolled", "vary": "varied", "edit": "edited"}
_NO_PINGS = discord.AllowedMentions.none()


class Delivery:
    """Edits the progress message (about once per interval), then posts the result or failure.

    While this process holds the interaction that started a job and its token is valid, it
    edits the original response and posts a follow-up; otherwise (the token expired, or the
    bot restarted) it edits through the bot token and sends to the channel, replying to the
    original message and mentioning the requester.
    """

    def __init__(self, client: discord.Client, service: ImagineService, *,
                 interval_s: float = 2.0) -> None:
        self.client = client
        self.service = service
        self.interval_s = interval_s
        self._live: dict[str, discord.Interaction] = {}
        self._last_edit: dict[str, float] = {}
        self._latest: dict[str, tuple[Job, str]] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    def track(self, job: Job, interaction: discord.Interaction) -> None:
        """Remember the interaction that started `job` (for its token, while it is valid)."""
        self._live[job.id] = interaction

    async def __call__(self, event: JobEvent) -> None:
        """Handle one job event from the service."""
        if isinstance(event, JobQueued | JobRunning):
            await self._progress(event.job, progress_text(event))
        elif isinstance(event, JobHandedBack):  # the bot is stopping: say so now, not paced
            self._stop_pending(event.job.id)
            await self._edit_progress(event.job, progress_text(event))
        elif isinstance(event, JobDone):
            await self._done(event)
        elif isinstance(event, JobFailed):
            await self._failed(event)

    async def close(self) -> None:
        """Cancel delayed progress edits."""
        for task in list(self._pending.values()):
            task.cancel()
        self._pending.clear()

    # --- progress ---------------------------------------------------------------------------

    async def _progress(self, job: Job, text: str) -> None:
        wait = self._last_edit.get(job.id, float("-inf")) + self.interval_s - time.monotonic()
        if wait <= 0:
            self._stop_pending(job.id)
            await self._edit_progress(job, text)
            return
        self._latest[job.id] = (job, text)
        if job.id not in self._pending:
            self._pending[job.id] = asyncio.create_task(self._edit_later(job.id, wait))

    async def _edit_later(self, job_id: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._pending.pop(job_id, None)
        latest = self._latest.pop(job_id, None)
        if latest is not None:
            await self._edit_progress(*latest)

    def _stop_pending(self, job_id: str) -> None:
        self._latest.pop(job_id, None)
        task = self._pending.pop(job_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _edit_progress(self, job: Job, text: str,
                             interaction: discord.Interaction | None = None) -> None:
        self._last_edit[job.id] = time.monotonic()
        interaction = interaction or self._live.get(job.id)
        try:
            if interaction is not None and token_valid(job.target):
                await interaction.edit_original_response(content=text,
                                                         allowed_mentions=_NO_PINGS)
            elif job.target.message_id:
                message = self._channel(job.target).get_partial_message(
                    int(job.target.message_id))
                await message.edit(content=text, allowed_mentions=_NO_PINGS)
        except discord.HTTPException as error:
            log.warning("progress edit for job %s failed (HTTP %s)", job.id, error.status)

    def _forget(self, job_id: str) -> discord.Interaction | None:
        self._stop_pending(job_id)
        self._last_edit.pop(job_id, None)
        return self._live.pop(job_id, None)

    # --- results ----------------------------------------------------------------------------

    async def _done(self, event: JobDone) -> None:
        job = event.job
        interaction = self._forget(job.id)
        message: discord.Message | None = None
        followed_up = False
        if interaction is not None and token_valid(job.target):
            try:
                message = await interaction.followup.send(wait=True, **self._result(event))
                followed_up = True
            except discord.HTTPException as error:
                log.warning("follow-up for job %s failed (HTTP %s); sending to the channel",
                            job.id, error.status)
        if message is None:
            message = await self._send(job.target, **self._result(event))
            if message is None:
                return
        # Marked at once: a crash from here on must not post the images a second time.
        await self.service.mark_delivered(job.id)
        if followed_up or job.target.message_id:  # after a restart it said "Generating…"
            await self._edit_progress(job, progress_text(event), interaction)
        self._last_edit.pop(job.id, None)
        await self.service.update_target(  # later rerolls reply to the result itself
            job.id, dataclasses.replace(job.target, message_id=str(message.id)))

    def _result(self, event: JobDone) -> dict[str, Any]:
        job = event.job
        limit = InteractionState.of(job.target).filesize_limit
        files, notes = attachments(job.id, event.images, limit)
        word = _ACTION_WORDS.get(job.action, "")
        content = " ".join(filter(None, [f"<@{job.actor.user_id}>", word]))
        if notes:
            content += "\n" + "\n".join(notes)
        return {"content": content, "embed": result_embed(job, event.balance), "files": files,
                "view": result_view(job), "allowed_mentions": only_user(job.actor.user_id)}

    async def _failed(self, event: JobFailed) -> None:
        job = event.job
        interaction = self._forget(job.id)
        if interaction is not None and token_valid(job.target):
            try:
                await interaction.followup.send(event.message, ephemeral=True,
                                                allowed_mentions=_NO_PINGS)
                await interaction.delete_original_response()
            except discord.HTTPException as error:
                log.warning("failure notice for job %s failed (HTTP %s)", job.id, error.status)
            else:
                await self.service.mark_delivered(job.id)
                return
        sent = await self._send(job.target, content=f"<@{job.actor.user_id}> {event.message}",
                                allowed_mentions=only_user(job.actor.user_id))
        if sent is None:
            return
        if job.target.message_id:  # the progress line would otherwise say "queued" forever
            await self._edit_progress(job, "This request failed; see the reply.")
            self._last_edit.pop(job.id, None)
        await self.service.mark_delivered(job.id)

    async def _send(self, target: ReplyTarget, **kwargs: Any) -> discord.Message | None:
        """Send through the bot token, replying to the original message when there is one.

        None when Discord refuses: the job stays undelivered and is offered again after the
        next restart.
        """
        channel = self._channel(target)
        reply_to = target.reply_to_message_id or target.message_id
        if reply_to:
            kwargs["reference"] = channel.get_partial_message(int(reply_to)).to_reference(
                fail_if_not_exists=False)
        try:
            return await channel.send(**kwargs)
        except discord.HTTPException as error:
            log.warning("could not post to channel %s (HTTP %s); the result stays undelivered "
                        "until the next start", channel.id, error.status)
            return None

    def _channel(self, target: ReplyTarget) -> discord.PartialMessageable:
        guild_id = int(target.workspace_id) if target.workspace_id else None
        return self.client.get_partial_messageable(int(target.thread_id or target.channel_id),
                                                   guild_id=guild_id)
