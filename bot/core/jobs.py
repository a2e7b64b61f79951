"""Job states, who asked, where to reply, and the events a job emits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot.core.defaults import NO_PROVENANCE, Provenance
from bot.core.request import ImagineRequest


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


CANCELLED = "Cancelled. Your credits were refunded."


class JobAction(StrEnum):
    """What made the job: a new request, or a button on an earlier result."""

    IMAGINE = "imagine"
    REROLL = "reroll"
    VARY = "vary"
    EDIT = "edit"
    AGAIN = "again"  # the same request and seed, from /history


@dataclass(frozen=True)
class Actor:
    """A user in a workspace. workspace_id None means a DM or the command line."""

    platform: str  # "discord" | "slack" | "console" | "cli"
    user_id: str
    workspace_id: str | None = None
    display_name: str = ""
    is_admin: bool = False

    @property
    def scope(self) -> str:
        """The quota scope: the workspace, or the user alone outside one."""
        if self.workspace_id:
            return f"{self.platform}:{self.workspace_id}"
        return f"{self.platform}:user:{self.user_id}"


@dataclass(frozen=True)
class ReplyTarget:
    """Where a job's messages go, kept with the job so a restart can still deliver."""

    platform: str
    channel_id: str = ""
    workspace_id: str | None = None
    thread_id: str | None = None
    message_id: str | None = None  # the message to edit with progress, or to reply to
    reply_to_message_id: str | None = None  # for reroll/vary/edit: the original result
    # What only the platform's adapter understands (a Discord interaction token, the Slack file
    # ids of a result): text the adapter writes and reads, which the core and store carry as is.
    adapter_state: str = ""


@dataclass(frozen=True)
class Job:
    """One generation job, as stored."""

    id: str
    actor: Actor
    request: ImagineRequest
    cost: int
    state: JobState
    target: ReplyTarget
    created_at: float
    backend: str = ""
    parent_id: str | None = None
    action: JobAction = JobAction.IMAGINE
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    images: tuple[Path, ...] = ()
    error: str | None = None
    refunded: bool = False
    delivered: bool = False
    deleted: bool = False
    backend_seconds: float | None = None
    provenance: Provenance = NO_PROVENANCE  # where each value came from (/settings)


@dataclass(frozen=True)
class JobQueued:
    job: Job
    position: int  # 1 = next to run
    eta_s: float


@dataclass(frozen=True)
class JobRunning:
    job: Job
    progress: float | None = None  # 0..1 when the backend reports it


@dataclass(frozen=True)
class JobDone:
    job: Job
    images: tuple[Path, ...]
    balance: int | None  # None: unlimited


@dataclass(frozen=True)
class JobFailed:
    job: Job
    message: str  # the user's sentence, refund included
    refunded: bool


@dataclass(frozen=True)
class JobHandedBack:
    """The bot is stopping: the job went back to the queue and a successor will run it."""

    job: Job


JobEvent = JobQueued | JobRunning | JobHandedBack | JobDone | JobFailed
