"""What the core reports for operators' metrics; bot/ops/metrics.py counts it.

The core only says what happened; how it is counted (Prometheus, nothing) is not its business.
"""

from __future__ import annotations

from bot.core.jobs import Job


class Telemetry:
    """Called by the service and the dispatcher at the moments operators count; this base
    counts nothing (tests, the command line) and bot/ops/metrics.py overrides every method."""

    def job_submitted(self, job: Job) -> None:
        """A new job was stored and queued."""

    def job_started(self, job: Job, waited_s: float) -> None:
        """A backend slot took the job after it waited `waited_s` in the queue."""

    def job_ended(self, job: Job) -> None:
        """The job reached its final state (done, failed or cancelled), once."""

    def job_handed_back(self, job: Job) -> None:
        """The job went back to the queue on a clean stop."""

    def backend_call(self, backend: str, model: str, seconds: float, ok: bool) -> None:
        """One backend call (all its retries) took `seconds` and succeeded or not."""

    def retried(self, backend: str) -> None:
        """A transient backend failure is being retried."""

    def credits(self, kind: str, amount: int) -> None:
        """Quota credits were 'charged' or 'refunded'."""

    def remaining_credits(self, backend: str, value: float) -> None:
        """The backend said how many of its own credits the account has left."""

