"""Money: what a job costs in Segmind credits, the team's budget per period, and its sentences.

Segmind bills in its own credits (the unit of its ``x-remaining-credits`` header). A job's money
is measured when the backend could isolate the drop of that header across the job's own calls,
and estimated from ``[budget.prices]`` otherwise; backends of ours (the worker, the fleet) cost
no money. The budget binds everyone, admins included: their credits are unlimited, the bill is
not. The store keeps the numbers (bot/store/budget_repo.py); this module holds the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from bot.core.backend import GenerationResult
from bot.core.catalog import Catalog
from bot.core.errors import BudgetExhausted
from bot.core.ports import Transaction
from bot.core.quota import Period, period_end, period_start
from bot.core.request import ImagineRequest

# Segmind's price per image at 1024x1024 and the model's default steps, in Segmind credits
# (1 credit = 1 US dollar). chroma's is on its API page (shared/seeds); the others are estimates.
DEFAULT_PRICES: Mapping[str, float] = {"chroma": 0.055, "flux-schnell": 0.003, "kolors": 0.01}
PAID_BACKENDS = frozenset({"segmind"})  # the hosted API; the worker and fleet cost no money


@dataclass(frozen=True)
class BudgetRules:
    """[budget]: the period, the limit (0 = none), when to warn, and the prices."""

    period: Period = Period.MONTH
    limit: float = 0.0
    warn_at: float = 0.8
    low_credits: float = 0.0  # warn when the account's remaining credits fall below (0 = off)
    prices: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError(f"the budget limit must be 0 (none) or more, not {self.limit:g}")
        if not 0 < self.warn_at <= 1:
            raise ValueError(f"warn_at must be above 0 and at most 1, not {self.warn_at:g}")

    def price(self, request: ImagineRequest, catalog: Catalog) -> float:
        """The estimated money of a request: the model's price, scaled like the credit cost
        (images x megapixels x steps / default steps), not rounded up."""
        spec = catalog.get(request.model)
        unit = self.prices.get(request.model, 0.0)
        if spec is None or unit <= 0:
            return 0.0
        megapixels = request.width * request.height / (1024 * 1024)
        return round(unit * request.samples * megapixels * request.steps / spec.cost_steps, 6)

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The current budget period: its start and its reset (UTC)."""
        return period_start(self.period, now), period_end(self.period, now)

    def would_pass(self, spent: float, cost: float) -> bool:
        """Whether a job of `cost` on top of `spent` passes the limit (never, without one)."""
        # A hair of float noise must not refuse a job that lands exactly on the limit.
        return self.limit > 0 and spent + cost > self.limit + 1e-9

    def refusal(self, now: datetime) -> BudgetExhausted:
        """The sentence for a Segmind job the budget cannot take."""
        _, resets = self.window(now)
        return BudgetExhausted(
            f"The team's image budget for this {self.period.value} is used up until "
            f"{resets:%Y-%m-%d %H:%M} UTC; ask an admin. Nothing was charged.")


@dataclass(frozen=True)
class Money:
    """What one finished job cost: Segmind credits (measured or estimated), or GPU seconds."""

    credits: float
    measured: bool
    gpu_seconds: float | None = None


@dataclass(frozen=True)
class BudgetStatus:
    """The period's spend against the limit; `spent` includes jobs still queued or running
    at their estimate."""

    period: Period
    start: datetime
    resets_at: datetime
    limit: float
    spent: float
    warn_at: float

    @property
    def share(self) -> float | None:
        """spent / limit, or None without a limit."""
        return self.spent / self.limit if self.limit > 0 else None

    @property
    def warning(self) -> bool:
        """Whether the spend reached warn_at of the limit."""
        return self.share is not None and self.share >= self.warn_at - 1e-9

    @property
    def used_up(self) -> bool:
        """Whether the spend reached the limit."""
        return self.limit > 0 and self.spent >= self.limit - 1e-9

    def sentence(self) -> str:
        """'4.2 of 10 Segmind credits spent this month (42%); resets 2025-02-01 00:00 UTC.'"""
        if self.limit <= 0:
            return (f"{self.spent:.4g} Segmind credits spent this {self.period.value}; "
                    "no budget limit is set.")
        return (f"{self.spent:.4g} of {self.limit:g} Segmind credits spent this "
                f"{self.period.value} ({self.share or 0:.0%}); resets "
                f"{self.resets_at:%Y-%m-%d %H:%M} UTC.")


class BudgetStore(Protocol):
    """The money columns of jobs; bot/store/budget_repo.py implements it."""

    def spent(self, tx: Transaction, backends: frozenset[str], since: float) -> float: ...
    def set_estimate(self, tx: Transaction, job_id: str, credits: float) -> None: ...
    def record(self, tx: Transaction, job_id: str, money: Money) -> None: ...
    def busy_elsewhere(self, tx: Transaction, job_id: str, backend: str, since: float) -> bool: ...
    async def spent_now(self, backends: frozenset[str], since: float) -> float: ...


class BudgetBook:
    """Applies the rules: estimates at submit, the limit inside the submit transaction (so
    every process on the database sees the same spend), and the money of each finished job."""

    def __init__(self, rules: BudgetRules, catalog: Catalog, store: BudgetStore,
                 paid_backends: frozenset[str] = PAID_BACKENDS) -> None:
        self.rules = rules
        self.catalog = catalog
        self.store = store
        self.paid_backends = paid_backends

    def estimate(self, request: ImagineRequest, backend: str) -> float:
        """The money a request is expected to cost on `backend` (0 on our own backends)."""
        return self.rules.price(request, self.catalog) if backend in self.paid_backends else 0.0

    def admit(self, tx: Transaction, job_id: str, backend: str, estimate: float,
              now: datetime | None = None) -> None:
        """Inside the submit transaction: raise BudgetExhausted when a paid job would pass the
        limit, else note its estimate (it counts against the budget while it waits)."""
        if backend not in self.paid_backends:
            return
        if self.rules.limit > 0:
            now = now or datetime.now(UTC)
            start, _ = self.rules.window(now)
            spent = self.store.spent(tx, self.paid_backends, start.timestamp())
            if self.rules.would_pass(spent, estimate):
                raise self.rules.refusal(now)
        self.store.set_estimate(tx, job_id, estimate)

    def money(self, tx: Transaction, job_id: str, request: ImagineRequest, backend: str,
              result: GenerationResult, seconds: float) -> Money:
        """Inside the finishing transaction: record and return what the job cost. A measured
        drop counts only when no other process ran a job on the same account meanwhile."""
        estimate = self.estimate(request, backend)
        if backend not in self.paid_backends:
            money = Money(0.0, measured=False, gpu_seconds=round(seconds, 3))
        elif (result.credits_spent is not None and result.spent_since is not None
              and not self.store.busy_elsewhere(tx, job_id, backend, result.spent_since)):
            money = Money(round(result.credits_spent, 6), measured=True)
        else:
            money = Money(estimate, measured=False)
        self.store.record(tx, job_id, money)
        return money

    async def status(self, now: datetime | None = None) -> BudgetStatus:
        """The period's spend against the limit, now."""
        now = now or datetime.now(UTC)
        start, _ = self.rules.window(now)
        return self._status(now, await self.store.spent_now(self.paid_backends, start.timestamp()))

    def status_in(self, tx: Transaction, now: datetime) -> BudgetStatus:
        """status() inside the caller's transaction."""
        start, _ = self.rules.window(now)
        return self._status(now, self.store.spent(tx, self.paid_backends, start.timestamp()))

    def _status(self, now: datetime, spent: float) -> BudgetStatus:
        start, resets = self.rules.window(now)
        return BudgetStatus(self.rules.period, start, resets, self.rules.limit, round(spent, 6),
                            self.rules.warn_at)
