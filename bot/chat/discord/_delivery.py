"""The service's listener for Discord jobs: progress edits, the result message, failures."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import discord

from bot.chat.actions import progress_rows, result_rows
from bot.chat.discord._convert import InteractionState, only_user, token_valid
from bot.chat.discord._files import attachments
from bot.chat.discord._ui import result_embed, view_of
from bot.chat.progress import PacedProgress
from bot.chat.render import progress_text
from bot.core.jobs import (
    Job,
    JobDone,
    JobEvent,
    JobFailed,
    JobHandedBack,
    JobQueued,
    JobRunning,
    JobState,
    ReplyTarget,
)
from bot.core.service import ImagineService

log = logging.getLogger("bot.chat.discord")

_ACTION_WORDS = {"imagine": "", "reroll": "rerolled", "vary": "varied", "edit": "edited",
                 "again": "again"}
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
        self.progress = PacedProgress(self._edit_progress, interval_s=interval_s)
        self._live: dict[str, discord.Interaction] = {}

    def track(self, job: Job, interaction: discord.Interaction) -> None:
        """Remember the interaction that started `job` (for its token, while it is valid)."""
        self._live[job.id] = interaction

    async def __call__(self, event: JobEvent) -> None:
        """Handle one job event from the service."""
        if isinstance(event, JobQueued | JobRunning):
            await self.progress.update(event.job, progress_text(event))
        elif isinstance(event, JobHandedBack):  # the bot is stopping: say so now, not paced
            await self.progress.now(event.job, progress_text(event))
        elif isinstance(event, JobDone):
            await self._done(event)
        elif isinstance(event, JobFailed):
            await self._failed(event)

    async def close(self) -> None:
        """Cancel delayed progress edits."""
        await self.progress.close()

    # --- progress ---------------------------------------------------------------------------

    async def _edit_progress(self, job: Job, text: str) -> None:
        """Edit the progress message: the interaction's response while its token lasts, else
        the channel message through the bot token."""
        interaction = self._live.get(job.id)
        view = view_of(progress_rows(job))  # Cancel while it waits; None removes it after
        try:
            if interaction is not None and token_valid(job.target):
                await interaction.edit_original_response(content=text, view=view,
                                                         allowed_mentions=_NO_PINGS)
            elif job.target.message_id:
                message = self._channel(job.target).get_partial_message(
                    int(job.target.message_id))
                await message.edit(content=text, view=view, allowed_mentions=_NO_PINGS)
        except discord.HTTPException as error:
            log.warning("progress edit for job %s failed (HTTP %s)", job.id, error.status)

    # --- results ----------------------------------------------------------------------------

    async def _done(self, event: JobDone) -> None:
        job = event.job
        interaction = self._live.get(job.id)
        message: discord.Message | None = None
        followed_up = False
        if interaction is not None and token_valid(job.target):
            try:
                message = await interaction.followup.send(
                    wait=True, ephemeral=InteractionState.of(job.target).private,
                    **self._result(event))
                followed_up = True
            except discord.HTTPException as error:
                log.warning("follow-up for job %s failed (HTTP %s); sending to the channel",
                            job.id, error.status)
        if message is None:
            message = await self._send(job.target, owner=job.actor.user_id,
                                       **self._result(event))
            if message is None:
                return
        # Marked at once: a crash from here on must not post the images a second time.
        await self.service.mark_delivered(job.id)
        if followed_up or job.target.message_id:  # after a restart it said "Generating…"
            await self.progress.final(job, progress_text(event))
        else:
            self.progress.forget(job.id)
        self._live.pop(job.id, None)
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
                "view": view_of(result_rows(job)), "allowed_mentions": only_user(job.actor.user_id)}

    async def _failed(self, event: JobFailed) -> None:
        job = event.job
        interaction = self._live.pop(job.id, None)
        if interaction is not None and token_valid(job.target):
            try:
                await interaction.followup.send(event.message, ephemeral=True,
                                                allowed_mentions=_NO_PINGS)
                self.progress.forget(job.id)  # its message goes now
                await interaction.delete_original_response()
            except discord.HTTPException as error:
                log.warning("failure notice for job %s failed (HTTP %s)", job.id, error.status)
            else:
                await self.service.mark_delivered(job.id)
                return
        sent = await self._send(job.target, content=f"<@{job.actor.user_id}> {event.message}",
                                allowed_mentions=only_user(job.actor.user_id),
                                owner=job.actor.user_id)
        if sent is None:
            return
        if job.target.message_id:  # the progress line would otherwise say "queued" forever
            await self.progress.final(job, "Cancelled; see the reply." if job.state is JobState.CANCELLED
                                      else "This request failed; see the reply.")
        else:
            self.progress.forget(job.id)
        await self.service.mark_delivered(job.id)

    async def _send(self, target: ReplyTarget, *, owner: str | None = None,
                    **kwargs: Any) -> discord.Message | None:
        """Send through the bot token, replying to the original message when there is one;
        a private result ("only to me") goes to the owner's DMs instead of the channel.

        None when Discord refuses: the job stays undelivered and is offered again after the
        next restart.
        """
        if owner and InteractionState.of(target).private:
            return await self._send_dm(owner, **kwargs)
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

    async def _send_dm(self, owner: str, **kwargs: Any) -> discord.Message | None:
        """A private result past its interaction token: a direct message to its owner."""
        try:
            dm = await self.client.create_dm(discord.Object(int(owner)))
            return await dm.send(**kwargs)
        except discord.HTTPException as error:
            log.warning("could not send user %s their private result (HTTP %s); it stays "
                        "undelivered until the next start", owner, error.status)
            return None

    def _channel(self, target: ReplyTarget) -> discord.PartialMessageable:
        guild_id = int(target.workspace_id) if target.workspace_id else None
        return self.client.get_partial_messageable(int(target.thread_id or target.channel_id),
                                                   guild_id=guild_id)
