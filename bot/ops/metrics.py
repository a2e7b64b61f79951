"""The bot's Prometheus metrics, declared once, and the Telemetry that feeds them.

Labels stay of low cardinality (backend, model, state, kind): never a user or a job id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from bot.core.jobs import Job
from bot.core.telemetry import Telemetry

JOBS = Counter("imagine_jobs", "Jobs by the state they reached (submitted, done, failed, "
               "cancelled, handed_back)", ["state", "backend", "model"])
QUEUE = Gauge("imagine_queue_jobs", "Jobs of this process waiting for or holding a backend "
              "slot", ["backend", "state"])
BACKEND_SECONDS = Histogram(
    "imagine_backend_request_seconds", "Time of one backend call, retries included",
    ["backend", "model", "outcome"],
    buckets=(0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
)
QUEUE_WAIT = Histogram(
    "imagine_queue_wait_seconds", "Time from a job's submission until a backend slot took it",
    ["backend"], buckets=(0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 180, 600),
)
CREDITS = Counter("imagine_credits", "Quota credits charged (job done) and refunded", ["kind"])
RETRIES = Counter("imagine_backend_retries", "Transient backend failures retried", ["backend"])
REMAINING = Gauge("imagine_backend_remaining_credits", "The image service's own credits left "
                  "(Segmind's x-remaining-credits), as last seen", ["backend"])
CHAT_UP = Gauge("imagine_chat_connected", "1 while the chat connection is up", ["platform"])


class PrometheusTelemetry(Telemetry):
    """Counts what the core reports into the metrics above."""

    def job_submitted(self, job: Job) -> None:
        """Count a new job."""
        JOBS.labels("submitted", job.backend, job.request.model).inc()

    def job_started(self, job: Job, waited_s: float) -> None:
        """Observe how long the job waited."""
        QUEUE_WAIT.labels(job.backend).observe(max(waited_s, 0.0))

    def job_ended(self, job: Job) -> None:
        """Count the job's final state."""
        JOBS.labels(job.state.value, job.backend, job.request.model).inc()

    def job_handed_back(self, job: Job) -> None:
        """Count a job handed back on a clean stop."""
        JOBS.labels("handed_back", job.backend, job.request.model).inc()

    def backend_call(self, backend: str, model: str, seconds: float, ok: bool) -> None:
        """Observe one backend call."""
        BACKEND_SECONDS.labels(backend, model, "ok" if ok else "error").observe(seconds)

    def retried(self, backend: str) -> None:
        """Count a retry."""
        RETRIES.labels(backend).inc()

    def credits(self, kind: str, amount: int) -> None:
        """Count credits charged or refunded."""
        CREDITS.labels(kind).inc(amount)

    def remaining_credits(self, backend: str, value: float) -> None:
        """Remember the service's credits left."""
        REMAINING.labels(backend).set(value)
