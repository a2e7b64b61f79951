"""What a chat user can do to a job, the same on every platform.

The actions, the buttons that carry them (which, in which rows, with which labels), and one
function that performs an action for an actor and returns a neutral outcome. Adapters turn
a platform's button press into `perform(...)` and the outcome into the platform's reply; a new
button is one entry in BUTTONS and one branch in `perform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from bot.chat.render import info_fields
from bot.core.jobs import Actor, Job, JobState, ReplyTarget
from bot.core.service import ImagineService

MAX_VARIATION_BUTTONS = 10  # V1..V10: two rows of five under a result
ROW_WIDTH = 5  # Discord's limit per row; Slack shows as many, wrapped


class Action(StrEnum):
    """A button (or the console word) acting on one job, named as it appears in custom ids."""

    REROLL = "reroll"
    VARY = "vary"
    EDIT = "edit"
    INFO = "info"
    DELETE = "delete"
    CANCEL = "cancel"
    AGAIN = "again"


class Style(StrEnum):
    PLAIN = "plain"
    DANGER = "danger"


@dataclass(frozen=True)
class ButtonLook:
    """How an action's button looks on every platform."""

    label: str
    emoji: str
    style: Style = Style.PLAIN
    confirm: tuple[str, str] | None = None  # (question, consequence) where a platform asks


BUTTONS: dict[Action, ButtonLook] = {
    Action.REROLL: ButtonLook("Reroll", "🎲"),
    Action.VARY: ButtonLook("Vary", "🔀"),
    Action.EDIT: ButtonLook("Edit", "✏️"),
    Action.INFO: ButtonLook("Info", "ℹ️"),
    Action.DELETE: ButtonLook("Delete", "🗑️", Style.DANGER, (
        "Delete this image?", "Its files and buttons go away for everyone.")),
    Action.CANCEL: ButtonLook("Cancel", "✖️", Style.DANGER),
    Action.AGAIN: ButtonLook("Run again", "🔁"),
}


@dataclass(frozen=True)
class Button:
    """One button: the action, the job it acts on, and for Vary the image it varies."""

    action: Action
    job_id: str
    index: int | None = None
    label: str = ""  # empty: BUTTONS' label (with its emoji where the platform shows one)

    @property
    def look(self) -> ButtonLook:
        return BUTTONS[self.action]

    @property
    def text(self) -> str:
        return self.label or self.look.label


Rows = tuple[tuple[Button, ...], ...]


def result_rows(job: Job) -> Rows:
    """The buttons under a result: Reroll, Vary (one image), Edit, Info, Delete; then V1..Vn."""
    images = min(len(job.images) or job.request.samples, MAX_VARIATION_BUTTONS)
    main = [Button(Action.REROLL, job.id)]
    if images == 1:
        main.append(Button(Action.VARY, job.id, 0))
    main += [Button(Action.EDIT, job.id), Button(Action.INFO, job.id),
             Button(Action.DELETE, job.id)]
    variations = [Button(Action.VARY, job.id, i, label=f"V{i + 1}")
                  for i in range(images)] if images > 1 else []
    return (tuple(main), *_rows(variations))


def progress_rows(job: Job) -> Rows:
    """The buttons on a progress message: Cancel while the job waits, none once it runs."""
    if job.state is JobState.QUEUED:
        return ((Button(Action.CANCEL, job.id),),)
    return ()


def history_rows(jobs: list[Job]) -> Rows:
    """Under /history: Run again and Reroll for each listed job whose result was not deleted."""
    buttons = []
    for number, job in enumerate(jobs, start=1):
        if not job.deleted:
            buttons += [Button(Action.AGAIN, job.id, label=f"Again {number}"),
                        Button(Action.REROLL, job.id, label=f"Reroll {number}")]
    return _rows(buttons)


def _rows(buttons: list[Button]) -> Rows:
    return tuple(tuple(buttons[i:i + ROW_WIDTH]) for i in range(0, len(buttons), ROW_WIDTH))


# --- performing an action ---------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """A new job (Reroll, Vary, Run again, or Edit with its text): show its progress."""

    job: Job


@dataclass(frozen=True)
class OpenEditor:
    """Edit pressed: open the platform's editor, prefilled from `job`."""

    job: Job
    negative_allowed: bool


@dataclass(frozen=True)
class ShowInfo:
    """Info pressed: show these fields to the presser alone."""

    job: Job
    fields: list[tuple[str, str]]


@dataclass(frozen=True)
class Deleted:
    """The result is gone: remove its message and files."""

    job: Job


@dataclass(frozen=True)
class Cancelled:
    """The queued job ended, refunded; its progress message hears it from the job's events."""

    job: Job


Outcome = Started | OpenEditor | ShowInfo | Deleted | Cancelled


async def perform(service: ImagineService, actor: Actor, action: Action, job_id: str,
                  target: ReplyTarget, *, index: int = 0, text: str | None = None,
                  nsfw_allowed: bool = False) -> Outcome:
    """Do `action` on job `job_id` for `actor`; new jobs report to `target`.

    `text` is Edit's new prompt where the platform takes it inline (the console); without it
    Edit answers OpenEditor. Refusals raise ImagineError with the user's sentence."""
    if action is Action.REROLL:
        return Started(await service.reroll(actor, job_id, target, nsfw_allowed=nsfw_allowed))
    if action is Action.VARY:
        return Started(await service.vary(actor, job_id, target, index=index,
                                          nsfw_allowed=nsfw_allowed))
    if action is Action.AGAIN:
        return Started(await service.again(actor, job_id, target, nsfw_allowed=nsfw_allowed))
    if action is Action.EDIT:
        if text is not None:
            return Started(await service.edit(actor, job_id, text, None, target,
                                              nsfw_allowed=nsfw_allowed))
        job = await service.get_job(job_id)
        spec = service.catalog.get(job.request.model)
        return OpenEditor(job, negative_allowed=bool(spec and spec.negative_prompt))
    if action is Action.INFO:
        job = await service.get_job(job_id)
        return ShowInfo(job, info_fields(job, service.describe_variation(job)))
    if action is Action.DELETE:
        return Deleted(await service.delete(actor, job_id))
    if action is Action.CANCEL:
        return Cancelled(await service.cancel(actor, job_id))
    assert_never(action)
