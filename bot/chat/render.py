"""Platform-neutral wording of progress, results, info and failures; adapters add markup."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.jobs import (
    Job,
    JobDone,
    JobEvent,
    JobFailed,
    JobHandedBack,
    JobQueued,
    JobRunning,
)

HANDED_BACK = "The bot is restarting; your job is kept and will continue."


def progress_text(event: JobEvent) -> str:
    """One line for the progress message: queue position and ETA, or running."""
    if isinstance(event, JobQueued):
        ahead = "next in line" if event.position <= 1 else f"position {event.position} in the queue"
        return f"Queued: {ahead}, about {format_seconds(event.eta_s)}."
    if isinstance(event, JobRunning):
        if event.progress is not None:
            return f"Generating… {int(event.progress * 100)}%"
        return f"Generating {event.job.request.samples} image(s) with {event.job.request.model}…"
    if isinstance(event, JobHandedBack):
        return HANDED_BACK
    if isinstance(event, JobDone):
        return "Done."
    if isinstance(event, JobFailed):
        return event.message
    return ""


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
    fields.append(("Cost", f"{job.cost} credit{'s' if job.cost != 1 else ''}"))
    fields.append(("Balance", "unlimited" if balance is None else str(balance)))
    return fields


def info_fields(job: Job, variation: str = "") -> list[tuple[str, str]]:
    """Every parameter, the backend, timings and cost, for the Info button."""
    r = job.request
    fields = [
        ("Job", job.id),
        ("Prompt", r.prompt),
        ("Negative prompt", r.negative_prompt or "none"),
        ("Model", r.model),
        ("Backend", job.backend or "unknown"),
        ("Size", f"{r.width}×{r.height} ({r.aspect_ratio})"),
        ("Steps", str(r.steps)),
        ("CFG", f"{r.cfg:g}" if r.cfg is not None else "not used by this model"),
        ("Sampler / scheduler", f"{r.sampler} / {r.scheduler}"),
        ("Seed", _seeds(job)),
        ("Images", str(r.samples)),
        ("Format", f"{r.image_format}, quality {r.image_quality}"),
        ("Cost", f"{job.cost} credits"),
        ("State", job.state.value),
        ("Created", _when(job.created_at)),
    ]
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


def _seeds(job: Job) -> str:
    r = job.request
    if r.samples == 1:
        return str(r.seed)
    return f"{r.seed}…{r.seed + r.samples - 1}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
