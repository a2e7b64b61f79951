"""Credits: the cost of a request, allowances and periods, and how a charge is split and
refused. The store keeps the accounts and the ledger (bot/store/quota_repo.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.core.catalog import Catalog
from bot.core.errors import InsufficientCredits
from bot.core.request import ImagineRequest


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def request_cost(request: ImagineRequest, catalog: Catalog) -> int:
    """ceil(base x samples x megapixels x steps / the model's published default steps).

    flux-schnell at its defaults costs exactly 1; an admin's max_steps never raises a price.
    """
    spec = catalog.get(request.model)
    if spec is None:
        raise ValueError(f"unknown model {request.model}")
    megapixels = request.width * request.height / (1024 * 1024)
    raw = spec.base_cost * request.samples * megapixels * (request.steps / spec.cost_steps)
    # round() first so float noise (1.0000000001) never costs an extra credit
    return max(1, math.ceil(round(raw, 6)))


def period_start(period: Period, now: datetime) -> datetime:
    """The UTC boundary at which the current period began."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())  # Monday 00:00 UTC
    return day.replace(day=1)


def period_end(period: Period, now: datetime) -> datetime:
    """The UTC boundary at which the current period resets."""
    start = period_start(period, now)
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.WEEK:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class QuotaStatus:
    """What /quota shows: None for balance and allowance means unlimited."""

    user_id: str
    scope: str
    allowance: int | None
    period: Period
    used: int
    granted: int
    balance: int | None
    resets_at: datetime
    blocked: bool
    unlimited: bool

    def sentence(self) -> str:
        """One line for chat."""
        if self.blocked:
            return "You are blocked from generating images here; ask an admin."
        if self.unlimited:
            return "You have unlimited credits here."
        extra = f" plus {self.granted} granted" if self.granted else ""
        return (
            f"You have {self.balance} credits left: {self.allowance} per {self.period.value}{extra},"
            f" {self.used} used. Resets {self.resets_at:%Y-%m-%d %H:%M} UTC."
        )


UNLIMITED = -1  # an allowance value meaning "no limit"


@dataclass(frozen=True)
class Account:
    """A user's quota as it stands in the current period (read by the store in one query)."""

    allowance: int  # effective: the user's override, else the workspace's, else the default
    period: Period
    start: datetime  # when the current period began
    used: int  # in the current period
    granted: int  # one-off credits that do not reset
    blocked: bool

    @property
    def balance(self) -> int:
        """Credits left: what the allowance has left this period, plus the grants."""
        return max(self.allowance - self.used, 0) + self.granted


@dataclass(frozen=True)
class Charge:
    """How a reservation is paid: from this period's allowance first, then from grants."""

    from_allowance: int
    from_grant: int


@dataclass(frozen=True)
class QuotaRules:
    """The config's defaults and the rules every charge follows."""

    allowance: int = 50
    period: Period = Period.DAY
    admins_unlimited: bool = True

    def unlimited(self, account: Account, *, is_admin: bool) -> bool:
        """Whether the user pays nothing: an unlimited allowance, or an admin when admins are
        unlimited."""
        return account.allowance == UNLIMITED or (is_admin and self.admins_unlimited)

    def charge(self, account: Account, credits: int, now: datetime) -> Charge:
        """Split a cost between the allowance and the grants; InsufficientCredits if the
        balance does not cover it."""
        if credits > account.balance:
            raise self.refusal(account, credits, now)
        from_allowance = min(credits, max(account.allowance - account.used, 0))
        return Charge(from_allowance, credits - from_allowance)

    def refusal(self, account: Account, credits: int, now: datetime) -> InsufficientCredits:
        """The sentence for a cost the balance does not cover."""
        resets = period_end(account.period, now)
        return InsufficientCredits(
            f"That costs {credits} credits and you have {account.balance} left; your allowance "
            f"resets {resets:%Y-%m-%d %H:%M} UTC. Nothing was charged."
        )

    def status(self, account: Account, scope: str, user_id: str, *, is_admin: bool,
               now: datetime) -> QuotaStatus:
        """What /quota shows for this account."""
        unlimited = self.unlimited(account, is_admin=is_admin)
        return QuotaStatus(
            user_id=user_id, scope=scope, allowance=None if unlimited else account.allowance,
            period=account.period, used=account.used, granted=account.granted,
            balance=None if unlimited else account.balance,
            resets_at=period_end(account.period, now), blocked=account.blocked,
            unlimited=unlimited,
        )
