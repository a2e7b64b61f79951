"""/stats: what the bot did in a window of time, summed from the jobs the store reads.

The store hands over one JobFacts per job created in the window (bot/store/stats_repo.py);
summarize() turns them into a StatsReport: jobs, images, credits, money against the budget,
per-backend generation time and failure rate, queue wait, top users, and the days for the chart.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot.core.budget import BudgetStatus
from bot.core.errors import ImagineError

SINCE_CHOICES = ("24h", "7d", "30d")  # what the chat commands offer
DEFAULT_SINCE = "7d"
MAX_SINCE_DAYS = 366
TOP_USERS = 5
_RELATIVE = re.compile(r"(\d{1,4})\s*([hdw])")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


class StatsInputError(ImagineError):
    """A /stats argument that cannot be read."""


def parse_since(text: str, now: datetime) -> datetime:
    """'24h', '7d', '2w' back from now, or a UTC date '2025-01-31'; at most a year back."""
    word = text.strip().lower()
    shown = text.strip()[:20]
    allowed = "24h, 7d, 30d (any number of h, d or w) or a date such as 2025-01-31"
    match = _RELATIVE.fullmatch(word)
    if match:
        amount = int(match.group(1)) * _UNITS[match.group(2)]
        if amount <= timedelta(0):
            raise StatsInputError(f"since {shown!r} is not allowed: {allowed}.")
        start = now - amount
    else:
        try:
            start = datetime.strptime(word, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise StatsInputError(f"since {shown!r} cannot be read: use {allowed}.") from None
        if start >= now:
            raise StatsInputError(f"since {shown!r} is not in the past: use {allowed}.")
    if now - start > timedelta(days=MAX_SINCE_DAYS):
        raise StatsInputError(f"since {shown!r} is too far back: at most {MAX_SINCE_DAYS} days.")
    return start


@dataclass(frozen=True)
class JobFacts:
    """One job as /stats sees it."""

    created_at: float
    started_at: float | None
    finished_at: float | None
    state: str  # queued | running | done | failed | cancelled
    backend: str
    model: str
    platform: str
    scope: str
    user_id: str
    samples: int
    cost: int  # quota credits
    committed: bool  # its credits were charged
    refunded: bool
    money: float | None  # Segmind credits it cost, once finished
    money_measured: bool
    backend_seconds: float | None
    gpu_seconds: float | None


class StatsStore(Protocol):
    """Reads the jobs for /stats; bot/store/stats_repo.py implements it."""

    async def jobs_between(self, since: float, until: float) -> list[JobFacts]:
        """Every job created in [since, until), oldest first."""
        ...


@dataclass(frozen=True)
class BackendStats:
    name: str
    jobs: int
    done: int
    failed: int
    p50_s: float | None
    p95_s: float | None
    gpu_seconds: float
    money: float

    @property
    def failure_rate(self) -> float | None:
        """failed / (done + failed), or None before any job finished."""
        ended = self.done + self.failed
        return self.failed / ended if ended else None


@dataclass(frozen=True)
class UserStats:
    platform: str
    scope: str
    user_id: str
    credits: int  # charged
    images: int


@dataclass(frozen=True)
class DayModel:
    """One UTC day and model: the row of the CSV and a bar of the chart."""

    day: date
    model: str
    jobs: int
    images: int  # made (done jobs)
    failed: int
    credits_charged: int
    credits_refunded: int
    money: float
    gpu_seconds: float


@dataclass(frozen=True)
class StatsReport:
    since: datetime
    until: datetime
    jobs: int
    done: int
    failed: int
    cancelled: int
    waiting: int
    images: int
    credits_charged: int
    credits_refunded: int
    money: float
    money_measured: float  # of `money`, the part read from Segmind's header
    backends: tuple[BackendStats, ...]
    wait_p50_s: float | None
    wait_p95_s: float | None
    top_users: tuple[UserStats, ...]
    days: tuple[date, ...]  # every UTC day of the window, for the chart's axis
    rows: tuple[DayModel, ...]  # per day and model (only those with jobs)
    budget: BudgetStatus | None

    @property
    def models(self) -> tuple[str, ...]:
        """The models that appear, sorted."""
        return tuple(sorted({row.model for row in self.rows}))

    def images_per_day(self, model: str) -> list[int]:
        """Images made per day of `days` for one model."""
        made = {row.day: row.images for row in self.rows if row.model == model}
        return [made.get(day, 0) for day in self.days]

    def money_per_day(self) -> list[float]:
        """Segmind credits spent per day of `days`."""
        spent: dict[date, float] = defaultdict(float)
        for row in self.rows:
            spent[row.day] += row.money
        return [round(spent.get(day, 0.0), 6) for day in self.days]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..1) of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(jobs: Iterable[JobFacts], since: datetime, until: datetime,
              budget: BudgetStatus | None = None) -> StatsReport:
    """Sum the jobs created in [since, until) into a report."""
    facts = list(jobs)
    done = [j for j in facts if j.state == "done"]
    waits = [j.started_at - j.created_at for j in facts if j.started_at is not None]
    return StatsReport(
        since=since, until=until, jobs=len(facts), done=len(done),
        failed=sum(j.state == "failed" for j in facts),
        cancelled=sum(j.state == "cancelled" for j in facts),
        waiting=sum(j.state in ("queued", "running") for j in facts),
        images=sum(j.samples for j in done),
        credits_charged=sum(j.cost for j in facts if j.committed),
        credits_refunded=sum(j.cost for j in facts if j.refunded),
        money=round(sum(j.money or 0.0 for j in facts), 6),
        money_measured=round(sum(j.money or 0.0 for j in facts if j.money_measured), 6),
        backends=_backends(facts), wait_p50_s=percentile(waits, 0.5),
        wait_p95_s=percentile(waits, 0.95), top_users=_top_users(facts),
        days=_days(since, until), rows=_rows(facts), budget=budget,
    )


def _backends(facts: list[JobFacts]) -> tuple[BackendStats, ...]:
    grouped: dict[str, list[JobFacts]] = defaultdict(list)
    for job in facts:
        if job.backend:
            grouped[job.backend].append(job)
    out = []
    for name, jobs in sorted(grouped.items()):
        seconds = [j.backend_seconds for j in jobs
                   if j.state == "done" and j.backend_seconds is not None]
        out.append(BackendStats(
            name=name, jobs=len(jobs), done=sum(j.state == "done" for j in jobs),
            failed=sum(j.state == "failed" for j in jobs), p50_s=percentile(seconds, 0.5),
            p95_s=percentile(seconds, 0.95),
            gpu_seconds=round(sum(j.gpu_seconds or 0.0 for j in jobs), 3),
            money=round(sum(j.money or 0.0 for j in jobs), 6)))
    return tuple(out)


def _top_users(facts: list[JobFacts]) -> tuple[UserStats, ...]:
    credits: dict[tuple[str, str, str], int] = defaultdict(int)
    images: dict[tuple[str, str, str], int] = defaultdict(int)
    for job in facts:
        who = (job.platform, job.scope, job.user_id)
        if job.committed:
            credits[who] += job.cost
        if job.state == "done":
            images[who] += job.samples
    ranked = sorted(credits.items(), key=lambda item: (-item[1], item[0]))[:TOP_USERS]
    return tuple(UserStats(*who, credits=spent, images=images[who])
                 for who, spent in ranked if spent > 0)


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def _days(since: datetime, until: datetime) -> tuple[date, ...]:
    first, last = since.astimezone(UTC).date(), (until - timedelta(microseconds=1)).astimezone(
        UTC).date()
    return tuple(first + timedelta(days=n) for n in range((last - first).days + 1))


def _rows(facts: list[JobFacts]) -> tuple[DayModel, ...]:
    grouped: dict[tuple[date, str], list[JobFacts]] = defaultdict(list)
    for job in facts:
        grouped[(_day(job.created_at), job.model)].append(job)
    return tuple(
        DayModel(
            day=day, model=model, jobs=len(jobs),
            images=sum(j.samples for j in jobs if j.state == "done"),
            failed=sum(j.state == "failed" for j in jobs),
            credits_charged=sum(j.cost for j in jobs if j.committed),
            credits_refunded=sum(j.cost for j in jobs if j.refunded),
            money=round(sum(j.money or 0.0 for j in jobs), 6),
            gpu_seconds=round(sum(j.gpu_seconds or 0.0 for j in jobs), 3),
        )
        for (day, model), jobs in sorted(grouped.items())
    )
