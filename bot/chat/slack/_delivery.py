"""Job events -> Slack: a paced progress message, then the images, the summary and the buttons."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.progress import PacedProgress
from bot.chat.render import progress_text
from bot.chat.slack._format import (
    clip,
    escape,
    progress_blocks,
    progress_message,
    result_blocks,
    result_summary,
    user_ref,
)
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

log = logging.getLogger(__name__)

# Slack errors that no retry or restart can fix: the result is given up, not replayed forever.
UNREACHABLE = frozenset({"not_in_channel", "channel_not_found", "is_archived",
                         "restricted_action", "team_access_not_granted", "account_inactive"})


def unreachable(error: SlackApiError) -> bool:
    """Whether Slack refused because the bot cannot post in that channel at all."""
    return error.response.get("error") in UNREACHABLE


@dataclass(frozen=True)
class PostedResult:
    """The Slack messages of a delivered result, kept in ReplyTarget.adapter_state as JSON so
    that Delete can still remove them after a restart."""

    file_ids: tuple[str, ...] = ()
    ts: str | None = None  # the message with the buttons

    def to_text(self) -> str:
        """The JSON text stored in ReplyTarget.adapter_state."""
        return json.dumps({"files": list(self.file_ids), "result_ts": self.ts})

    @classmethod
    def of(cls, target: ReplyTarget) -> PostedResult:
        """What a target says was posted (nothing, before the result went out)."""
        if not target.adapter_state:
            return cls()
        stored = json.loads(target.adapter_state)
        files = stored.get("files") or []
        if isinstance(files, str):  # rows stored before adapter_state: "F1,F2"
            files = files.split(",")
        return cls(file_ids=tuple(filter(None, files)), ts=stored.get("result_ts"))


class Delivery:
    """The service's listener for Slack jobs; edits are paced to one per `interval_s` per job."""

    def __init__(self, client: AsyncWebClient, service: ImagineService, *,
                 interval_s: float = 2.0) -> None:
        self.client = client
        self.service = service
        self.closed = False
        self.progress = PacedProgress(self._show, interval_s=interval_s)
        self._posted: dict[str, str] = {}  # job id -> ts of its progress message
        self._seen: dict[str, asyncio.Event] = {}  # an event for the job reached us

    async def on_event(self, event: JobEvent) -> None:
        """Show one job event in Slack (the listener given to service.listen)."""
        if self.closed:
            return
        job = event.job
        self._heard(job.id).set()
        try:
            if isinstance(event, JobQueued | JobRunning):
                await self.progress.update(job, progress_text(event))
            elif isinstance(event, JobHandedBack):
                await self.progress.now(job, progress_text(event))
            elif isinstance(event, JobDone):
                await self._done(event)
            elif isinstance(event, JobFailed):
                await self._last_word(job, event.message)
                await self.service.mark_delivered(job.id)
        except SlackApiError as error:
            if not unreachable(error):
                raise  # logged by the bus; an undelivered result is retried after a restart
            log.warning("job %s: cannot post in %s (%s)", job.id, job.target.channel_id,
                        error.response.get("error"))
            if isinstance(event, JobDone | JobFailed):
                await self.service.mark_delivered(job.id)  # give up: no restart helps

    async def started(self, job: Job, *, wait_s: float = 1.0) -> None:
        """Make sure a just-queued job has a progress message, should no event have posted one;
        a channel the bot cannot post in raises here, for the handler to refund."""
        if self.closed:
            return
        try:  # the dispatcher announces the queue position at once; give it the first word
            await asyncio.wait_for(self._heard(job.id).wait(), wait_s)
        except TimeoutError:
            pass
        await self.progress.first(job, "Queued.")

    async def remove(self, job: Job, by_user: str, result_ts: str | None) -> None:
        """After a delete: drop the uploaded files and the buttons, and say who deleted it."""
        posted = PostedResult.of(job.target)
        for file_id in posted.file_ids:
            await self._quietly(self.client.files_delete(file=file_id))
        note = f"_Image deleted by {user_ref(by_user)}._"
        if job.target.message_id:
            await self._quietly(self.client.chat_update(
                channel=job.target.channel_id, ts=job.target.message_id, text=note, blocks=[]))
        ts = result_ts or posted.ts
        if ts:
            await self._quietly(self.client.chat_delete(channel=job.target.channel_id, ts=ts))

    async def close(self) -> None:
        """Stop showing events; pending paced edits are dropped."""
        self.closed = True
        await self.progress.close()

    # --- progress -------------------------------------------------------------------------

    def _heard(self, job_id: str) -> asyncio.Event:
        return self._seen.setdefault(job_id, asyncio.Event())

    async def _show(self, job: Job, status: str) -> None:
        """Post the job's progress message, or update it (with Cancel while it waits)."""
        text = progress_message(job, status)
        blocks = progress_blocks(job, text)
        ts = self._posted.get(job.id) or job.target.message_id
        if ts is None:
            response = await self.client.chat_postMessage(
                channel=job.target.channel_id, thread_ts=job.target.thread_id, text=text,
                blocks=blocks, unfurl_links=False, unfurl_media=False)
            self._posted[job.id] = str(response["ts"])
            await self.service.update_target(job.id, dataclasses.replace(
                job.target, message_id=self._posted[job.id]))
            return
        await self._quietly(self.client.chat_update(channel=job.target.channel_id, ts=ts,
                                                    text=text, blocks=blocks))

    async def _last_word(self, job: Job, status: str) -> str | None:
        """The progress message's last text (posted if there was none); returns its ts."""
        await self.progress.final(job, status)
        self._seen.pop(job.id, None)
        return self._posted.pop(job.id, None) or job.target.message_id

    # --- results --------------------------------------------------------------------------

    async def _done(self, event: JobDone) -> None:
        job = event.job
        progress_ts = await self._last_word(job, progress_text(event))
        channel, thread = job.target.channel_id, job.target.thread_id
        files = await asyncio.to_thread(_read, event.images)
        file_ids: list[str] = []
        if files:
            response = await self.client.files_upload_v2(
                file_uploads=[{"file": data, "filename": f"imagine-{job.id}-{i + 1}{suffix}",
                               "title": f"{clip(job.request.prompt, 80)} ({i + 1}/{len(files)})"}
                              for i, (suffix, data) in enumerate(files)],
                channel=channel, thread_ts=thread,
                initial_comment=result_summary(job, event.balance))
            file_ids = [str(f["id"]) for f in response.get("files") or []]
        else:
            log.warning("job %s: its images are gone; posting the buttons alone", job.id)
        message = await self.client.chat_postMessage(
            channel=channel, thread_ts=thread,
            text=f"Image ready for {user_ref(job.actor.user_id)}: “{escape(clip(job.request.prompt, 200))}”",
            blocks=result_blocks(job, event.balance), unfurl_links=False, unfurl_media=False)
        posted = PostedResult(file_ids=tuple(file_ids), ts=str(message["ts"]))
        await self.service.update_target(job.id, dataclasses.replace(
            job.target, message_id=progress_ts, adapter_state=posted.to_text()))
        await self.service.mark_delivered(job.id)

    async def _quietly(self, call: object) -> None:
        """Await a Slack call whose failure must not stop the delivery (logged, not raised)."""
        try:
            await call  # type: ignore[misc]
        except SlackApiError as error:
            log.warning("slack call failed: %s", error.response.get("error"))


def _read(paths: tuple[Path, ...]) -> list[tuple[str, bytes]]:
    return [(path.suffix, path.read_bytes()) for path in paths if path.is_file()]
