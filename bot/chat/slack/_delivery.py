"""Job events -> Slack: a paced progress message, then the images, the summary and the buttons."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.render import progress_text
from bot.chat.slack._format import (
    clip,
    escape,
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

_REMEMBER_FINISHED = 2048
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


@dataclass
class _Progress:
    """One job's progress message and its pacing."""

    channel: str
    thread: str | None
    ts: str | None = None
    last_sent: float = float("-inf")
    pending: str | None = None
    flush: asyncio.Task[None] | None = None
    finished: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seen: asyncio.Event = field(default_factory=asyncio.Event)  # an event reached us


class Delivery:
    """The service's listener for Slack jobs; edits are paced to one per `interval_s` per job."""

    def __init__(self, client: AsyncWebClient, service: ImagineService, *,
                 interval_s: float = 2.0) -> None:
        self.client = client
        self.service = service
        self.interval_s = interval_s
        self.closed = False
        self._jobs: dict[str, _Progress] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()

    async def on_event(self, event: JobEvent) -> None:
        """Show one job event in Slack (the listener given to service.listen)."""
        if self.closed:
            return
        try:
            if isinstance(event, JobQueued | JobRunning):
                await self._progress(event.job, progress_message(event.job, progress_text(event)))
            elif isinstance(event, JobHandedBack):
                await self._say_now(event.job, progress_message(event.job, progress_text(event)))
            elif isinstance(event, JobDone):
                await self._done(event)
            elif isinstance(event, JobFailed):
                await self._finish(event.job, progress_message(event.job, event.message))
                await self.service.mark_delivered(event.job.id)
        except SlackApiError as error:
            if not unreachable(error):
                raise  # logged by the bus; an undelivered result is retried after a restart
            log.warning("job %s: cannot post in %s (%s)", event.job.id,
                        event.job.target.channel_id, error.response.get("error"))
            if isinstance(event, JobDone | JobFailed):
                await self.service.mark_delivered(event.job.id)  # give up: no restart helps

    async def started(self, job: Job, *, wait_s: float = 1.0) -> None:
        """Make sure a just-queued job has a progress message, should no event have posted one."""
        if job.id in self._finished or self.closed:
            return
        state = self._state(job)
        try:  # the dispatcher announces the queue position at once; give it the first word
            await asyncio.wait_for(state.seen.wait(), wait_s)
        except TimeoutError:
            pass
        async with state.lock:
            if state.ts is None and not state.finished:
                await self._post(state, job, progress_message(job, "Queued."))

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
        for state in self._jobs.values():
            if state.flush is not None:
                state.flush.cancel()

    # --- progress -------------------------------------------------------------------------

    def _state(self, job: Job) -> _Progress:
        state = self._jobs.get(job.id)
        if state is None:
            state = _Progress(job.target.channel_id, job.target.thread_id, job.target.message_id)
            self._jobs[job.id] = state
        return state

    async def _progress(self, job: Job, text: str) -> None:
        if job.id in self._finished:
            return
        state = self._state(job)
        state.seen.set()
        async with state.lock:
            if state.finished:
                return
            if state.ts is None:
                await self._post(state, job, text)
                return
            wait = state.last_sent + self.interval_s - time.monotonic()
            if wait <= 0 and state.flush is None:
                await self._edit(state, text)
                return
            state.pending = text  # coalesce: only the latest text is shown when the time comes
            if state.flush is None:
                state.flush = asyncio.create_task(self._flush_later(state, max(wait, 0.0)))

    async def _say_now(self, job: Job, text: str) -> None:
        """Edit the progress message at once, unpaced (the bot is stopping)."""
        state = self._state(job)
        async with state.lock:
            state.pending = None
            if state.flush is not None:
                state.flush.cancel()
                state.flush = None
            if state.ts is not None and not state.finished:
                await self._edit(state, text)

    async def _flush_later(self, state: _Progress, wait: float) -> None:
        await asyncio.sleep(wait)
        async with state.lock:
            state.flush = None
            text, state.pending = state.pending, None
            if text is not None and not state.finished and not self.closed:
                await self._edit(state, text)

    async def _finish(self, job: Job, text: str) -> _Progress:
        """The last edit of the progress message (posted if there was none), still paced."""
        state = self._state(job)
        state.seen.set()
        async with state.lock:
            state.finished = True
            state.pending = None
            if state.flush is not None:
                state.flush.cancel()
                state.flush = None
            if state.ts is None:
                await self._post(state, job, text)
            else:
                wait = state.last_sent + self.interval_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._edit(state, text)
        self._jobs.pop(job.id, None)
        self._finished[job.id] = None
        while len(self._finished) > _REMEMBER_FINISHED:
            self._finished.popitem(last=False)
        return state

    async def _post(self, state: _Progress, job: Job, text: str) -> None:
        response = await self.client.chat_postMessage(
            channel=state.channel, thread_ts=state.thread, text=text,
            unfurl_links=False, unfurl_media=False)
        state.ts, state.last_sent = str(response["ts"]), time.monotonic()
        await self.service.update_target(job.id, dataclasses.replace(job.target, message_id=state.ts))

    async def _edit(self, state: _Progress, text: str) -> None:
        assert state.ts is not None, "edit before the progress message was posted"
        state.last_sent = time.monotonic()
        await self._quietly(self.client.chat_update(channel=state.channel, ts=state.ts, text=text))

    # --- results --------------------------------------------------------------------------

    async def _done(self, event: JobDone) -> None:
        job = event.job
        state = await self._finish(job, progress_message(job, progress_text(event)))
        files = await asyncio.to_thread(_read, event.images)
        file_ids: list[str] = []
        if files:
            response = await self.client.files_upload_v2(
                file_uploads=[{"file": data, "filename": f"imagine-{job.id}-{i + 1}{suffix}",
                               "title": f"{clip(job.request.prompt, 80)} ({i + 1}/{len(files)})"}
                              for i, (suffix, data) in enumerate(files)],
                channel=state.channel, thread_ts=state.thread,
                initial_comment=result_summary(job, event.balance))
            file_ids = [str(f["id"]) for f in response.get("files") or []]
        else:
            log.warning("job %s: its images are gone; posting the buttons alone", job.id)
        message = await self.client.chat_postMessage(
            channel=state.channel, thread_ts=state.thread,
            text=f"Image ready for {user_ref(job.actor.user_id)}: “{escape(clip(job.request.prompt, 200))}”",
            blocks=result_blocks(job, event.balance), unfurl_links=False, unfurl_media=False)
        posted = PostedResult(file_ids=tuple(file_ids), ts=str(message["ts"]))
        await self.service.update_target(job.id, dataclasses.replace(
            job.target, message_id=state.ts, adapter_state=posted.to_text()))
        await self.service.mark_delivered(job.id)

    async def _quietly(self, call: object) -> None:
        """Await a Slack call whose failure must not stop the delivery (logged, not raised)."""
        try:
            await call  # type: ignore[misc]
        except SlackApiError as error:
            log.warning("slack call failed: %s", error.response.get("error"))


def _read(paths: tuple[Path, ...]) -> list[tuple[str, bytes]]:
    return [(path.suffix, path.read_bytes()) for path in paths if path.is_file()]
