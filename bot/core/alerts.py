"""Alerts to admins: the budget at warn_at and used up, Segmind's credits running low, a backend
failing. Each is posted once per sink (an admin channel) per period or per incident; SQLite
records what was posted, so two processes on one database, or a restart, never repeat one.

The chat adapters implement AdminAlerts (bot/chat/discord/_alerts.py, bot/chat/slack/_alerts.py);
`imagine-bot doctor` prints the same alerts (current()) without posting or recording them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bot.core.budget import BudgetBook, BudgetStatus
from bot.core.ports import Store, Transaction

log = logging.getLogger(__name__)

FAILURE_WINDOW = 20  # a backend's last N finished jobs ...
FAILURE_MIN_JOBS = 5  # ... once it has at least this many ...
FAILURE_RATE = 0.5  # ... fail at more than this share: the backend is failing
POST_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Alert:
    """One alert: `key` makes it once (a period or an incident), `text` is what admins read."""

    key: str
    text: str


class AdminAlerts(Protocol):
    """Somewhere admins read: a Discord or Slack channel."""

    name: str  # where it posts, e.g. "discord:123": alerts are recorded per name

    async def post(self, text: str) -> None:
        """Post one alert; raise on failure (it is then tried again at the next check)."""
        ...


class AlertStore(Protocol):
    """What the alert rules read and record; bot/store/budget_repo.py implements it."""

    def remaining_credits(self, tx: Transaction, backend: str) -> float | None: ...
    def outcomes(self, tx: Transaction, backends: tuple[str, ...],
                 window: int) -> dict[str, tuple[int, int]]: ...
    def incident(self, tx: Transaction, name: str, active: bool) -> int | None: ...
    def claim(self, tx: Transaction, key: str, sink: str, text: str) -> bool: ...
    async def unclaim(self, key: str, sink: str) -> None: ...


@dataclass(frozen=True)
class Observation:
    """What the alert rules look at, read in one transaction."""

    budget: BudgetStatus
    refused: bool  # a paid job was just refused for the budget
    remaining: float | None  # Segmind's last x-remaining-credits
    low_credits: float
    outcomes: dict[str, tuple[int, int]]  # backend -> (failed, finished) over its last jobs


def budget_alerts(seen: Observation) -> list[Alert]:
    """The period's budget alerts: at warn_at, and used up (reached, or a job refused)."""
    b = seen.budget
    if b.limit <= 0:
        return []
    period = b.start.isoformat()
    resets = f"{b.resets_at:%Y-%m-%d %H:%M} UTC"
    alerts = []
    if b.warning:
        alerts.append(Alert(
            f"budget-warn:{period}",
            f"Budget warning: {b.spent:.4g} of {b.limit:g} Segmind credits spent this "
            f"{b.period.value} ({b.share or 0:.0%}; warn_at is {b.warn_at:.0%}). "
            f"It resets {resets}."))
    if b.used_up or seen.refused:
        alerts.append(Alert(
            f"budget-used:{period}",
            f"Budget used up: {b.spent:.4g} of {b.limit:g} Segmind credits spent this "
            f"{b.period.value}. New Segmind jobs are refused until {resets}; worker jobs "
            "continue. Raise [budget] limit to allow more."))
    return alerts


def low_credits(seen: Observation) -> bool:
    """Whether Segmind's remaining credits are below [budget] low_credits."""
    return seen.low_credits > 0 and seen.remaining is not None and seen.remaining < seen.low_credits


def failing(seen: Observation) -> dict[str, tuple[int, int]]:
    """The backends whose failure rate over their last jobs passes FAILURE_RATE."""
    return {name: (failed, total) for name, (failed, total) in sorted(seen.outcomes.items())
            if total >= FAILURE_MIN_JOBS and failed / total > FAILURE_RATE}


def low_credits_text(seen: Observation) -> str:
    """The sentence for low Segmind credits."""
    return (f"Segmind credits are low: {seen.remaining:g} left, below [budget] low_credits "
            f"({seen.low_credits:g}). Add credits to the Segmind account.")


def failing_text(name: str, failed: int, total: int) -> str:
    """The sentence for a failing backend."""
    return (f"Backend {name} is failing: {failed} of its last {total} jobs failed. "
            "Check `imagine-bot doctor` and the bot's log.")


class AlertWatch:
    """Checks the alert conditions after jobs end (and when the budget refuses one) and posts
    new alerts to every registered sink. Checks run one at a time, off the jobs' path."""

    def __init__(self, db: Store, store: AlertStore, budget: BudgetBook, *,
                 backends: tuple[str, ...] = ("segmind", "worker"),
                 post_timeout_s: float = POST_TIMEOUT_S) -> None:
        self.db = db
        self.store = store
        self.budget = budget
        self.backends = backends  # whose failure rate is watched
        self.post_timeout_s = post_timeout_s
        self.sinks: list[AdminAlerts] = []
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._refused = False

    def add(self, sink: AdminAlerts) -> None:
        """Post future alerts to `sink` too."""
        self.sinks.append(sink)

    def remove(self, sink: AdminAlerts) -> None:
        """Stop posting to `sink` (its adapter closed)."""
        if sink in self.sinks:
            self.sinks.remove(sink)

    def nudge(self, *, refused: bool = False) -> None:
        """Check soon (a job ended, or one was refused for the budget); checks that pile up
        while one runs become one more check after it."""
        if not self.sinks:
            return  # nobody to tell: nothing to record either
        self._refused = self._refused or refused
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def settled(self) -> None:
        """Wait until no check is running or due."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop checking; a check in progress is cancelled."""
        self.sinks.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._again = False
            refused, self._refused = self._refused, False
            try:
                await self.check(refused=refused)
            except Exception:  # alerts must never take the bot down
                log.exception("checking the admin alerts failed")
            if not self._again:
                return

    async def check(self, *, refused: bool = False, now: datetime | None = None) -> list[Alert]:
        """Record and post every alert a sink has not had yet; returns those posted."""
        sinks = list(self.sinks)
        if not sinks:
            return []
        when = now or datetime.now(UTC)

        def claim(tx: Transaction) -> list[tuple[AdminAlerts, Alert]]:
            seen = self._observe(tx, when, refused)
            alerts = budget_alerts(seen)
            number = self.store.incident(tx, "low-credits", low_credits(seen))
            if number is not None:
                alerts.append(Alert(f"low-credits#{number}", low_credits_text(seen)))
            bad = failing(seen)
            for name in sorted(seen.outcomes):
                number = self.store.incident(tx, f"failing:{name}", name in bad)
                if number is not None:
                    alerts.append(Alert(f"failing:{name}#{number}", failing_text(name, *bad[name])))
            return [(sink, alert) for alert in alerts for sink in sinks
                    if self.store.claim(tx, alert.key, sink.name, alert.text)]

        posted = []
        for sink, alert in await self.db.transaction(claim):
            try:
                await asyncio.wait_for(sink.post(alert.text), self.post_timeout_s)
            except Exception as error:  # try again at the next check
                log.warning("could not post an admin alert to %s (%s)", sink.name,
                            type(error).__name__)
                await self.store.unclaim(alert.key, sink.name)
                continue
            log.warning("ADMIN alert posted to %s: %s", sink.name, alert.text)
            posted.append(alert)
        return posted

    async def current(self, now: datetime | None = None) -> list[Alert]:
        """The alerts whose condition holds now (for doctor), without recording anything."""
        when = now or datetime.now(UTC)

        def look(tx: Transaction) -> list[Alert]:
            seen = self._observe(tx, when, refused=False)
            alerts = budget_alerts(seen)
            if low_credits(seen):
                alerts.append(Alert("low-credits", low_credits_text(seen)))
            alerts += [Alert(f"failing:{name}", failing_text(name, *counts))
                       for name, counts in failing(seen).items()]
            return alerts

        return await self.db.transaction(look)

    def _observe(self, tx: Transaction, now: datetime, refused: bool) -> Observation:
        return Observation(
            budget=self.budget.status_in(tx, now), refused=refused,
            remaining=self.store.remaining_credits(tx, "segmind"),
            low_credits=self.budget.rules.low_credits,
            outcomes=self.store.outcomes(tx, self.backends, FAILURE_WINDOW),
        )
