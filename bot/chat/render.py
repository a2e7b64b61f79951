"""Platform-neutral wording of progress, results, info and failures; adapters add markup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.core.defaults import source_label
from bot.core.jobs import (
    Job,
    JobDone,
    JobEvent,
    JobFailed,
    JobHandedBack,
    JobQueued,
    JobRunning,
    JobState,
)

if TYPE_CHECKING:  # bot.core.service imports the whole core; the views only need the type
    from bot.core.service import QueueView

HANDED_BACK = "The bot is restarting; your job is kept and will continue."


def progress_text(event: JobEvent) -> str:
    """One line for the progress message: queue position and ETA, or running."""
    if isinstance(event, JobQueued):
        ahead = "next in line" if event.position <= 1 else f"position {event.position} in the queue"
        return f"Queued: {ahead}, about {format_seconds(event.eta_s)}.{_notes(event.job)}"
    if isinstance(event, JobRunning):
        if event.progress is not None:
            return f"Generating… {int(event.progress * 100)}%{_notes(event.job)}"
        return (f"Generating {event.job.request.samples} image(s) with "
                f"{event.job.request.model}…{_notes(event.job)}")
    if isinstance(event, JobHandedBack):
        return HANDED_BACK
    if isinstance(event, JobDone):
        return "Done."
    if isinstance(event, JobFailed):
        return event.message
    return ""


def credits_text(credits: int) -> str:
    """'1 credit', '4 credits'."""
    return f"{credits} credit{'s' if credits != 1 else ''}"


def format_seconds(seconds: float) -> str:
    """'12 s', '3 min'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def result_fields(job: Job, balance: int | None) -> list[tuple[str, str]]:
    """The summary under a result: model, seed, size, steps, cfg, cost, balance."""
    r = job.request
    fields = [
        ("Model", r.model),
        ("Seed", _seeds(job)),
        ("Size", f"{r.width}×{r.height}"),
        ("Steps", str(r.steps)),
    ]
    if r.cfg is not None:
        fields.append(("CFG", f"{r.cfg:g}"))
    fields.append(("Cost", credits_text(job.cost)))
    fields.append(("Balance", "unlimited" if balance is None else str(balance)))
    if job.provenance.notes:  # defaults this model did not take (/settings)
        fields.append(("Skipped", " ".join(job.provenance.notes)))
    return fields


def info_fields(job: Job, variation: str = "") -> list[tuple[str, str]]:
    """Every parameter, the backend, timings and cost, for the Info button."""
    r = job.request
    fields = [
        ("Job", job.id),
        ("Prompt", r.prompt),
        ("Negative prompt", (r.negative_prompt or "none") + _from(job, "negative_prompt")),
        ("Model", r.model + _from(job, "model")),
        ("Backend", job.backend or "unknown"),
        ("Size", f"{r.width}×{r.height} ({r.aspect_ratio})" + _from(job, "aspect_ratio")),
        ("Steps", str(r.steps) + _from(job, "steps")),
        ("CFG", f"{r.cfg:g}{_from(job, 'cfg')}" if r.cfg is not None
         else "not used by this model"),
        ("Sampler / scheduler", f"{r.sampler} / {r.scheduler}" + _from(job, "sampler")),
        ("Seed", _seeds(job) + _from(job, "seed")),
        ("Images", str(r.samples) + _from(job, "samples")),
        ("Format", f"{r.image_format}, quality {r.image_quality}" + _from(job, "image_format")),
        ("Cost", credits_text(job.cost)),
        ("State", job.state.value),
        ("Created", _when(job.created_at)),
    ]
    if job.provenance.notes:
        fields.append(("Skipped", " ".join(job.provenance.notes)))
    if variation:
        fields.append(("Variation", variation))
    if job.parent_id:
        fields.append(("From", f"{job.action} of job {job.parent_id}"))
    if job.started_at and job.finished_at:
        fields.append(("Took", f"{job.finished_at - job.started_at:.1f} s "
                               f"(queued {job.started_at - job.created_at:.1f} s)"))
    return fields


def fields_text(fields: list[tuple[str, str]]) -> str:
    """'Model: kolors · Seed: 5 · …' for plain-text front ends."""
    return " · ".join(f"{name}: {value}" for name, value in fields)


def _from(job: Job, field: str) -> str:
    """' (your default)': where a value came from, for jobs that recorded it."""
    source = job.provenance.source(field)
    return f" ({source_label(source, job.provenance.workspace_word)})" if source else ""


def _notes(job: Job) -> str:
    return "".join(f" {note}" for note in job.provenance.notes)


def _seeds(job: Job) -> str:
    r = job.request
    if r.samples == 1:
        return str(r.seed)
    return f"{r.seed}…{r.seed + r.samples - 1}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def queue_lines(view: QueueView) -> list[str]:
    """/queue: the user's jobs with place and ETA, then the totals per backend."""
    lines = []
    for number, queued in enumerate(view.mine, start=1):
        job = queued.job
        if job.state is JobState.RUNNING:
            where = "generating now"
        elif queued.place is not None and queued.eta_s is not None:
            where = f"place {queued.place}, about {format_seconds(queued.eta_s)}"
        else:
            where = "waiting (in another bot process)"
        lines.append(f"{number}. {where}: “{_clip(job.request.prompt, 60)}” ({job.request.model}, "
                     f"job {job.id})")
    if not lines:
        lines.append("You have no jobs waiting or running.")
    totals = [f"{name}: {waiting} waiting, {running} running"
              for name, (waiting, running) in sorted(view.totals.items())]
    lines.append("All users: " + ("; ".join(totals) if totals else "the queue is empty") + ".")
    return lines


def history_lines(jobs: list[Job]) -> list[str]:
    """/history: one line per job, newest first: prompt, model, size, seed, cost, state, when."""
    if not jobs:
        return ["You have no images yet; try /imagine."]
    lines = []
    for number, job in enumerate(jobs, start=1):
        r = job.request
        lines.append(f"{number}. “{_clip(r.prompt, 60)}” · {r.model} · {r.width}×{r.height} · "
                     f"seed {_seeds(job)} · {credits_text(job.cost)} · {_result_state(job)}"
                     f" · {_when(job.created_at)} · job {job.id}")
    return lines


def _result_state(job: Job) -> str:
    if job.deleted:
        return "deleted"
    if job.state is JobState.DONE and not job.images:  # only [storage] retention_days clears them
        return "expired"
    return job.state.value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
