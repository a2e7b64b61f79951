"""Credits: the cost of a request, reserve / commit / refund, allowances and periods."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.core.catalog import Catalog
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
