"""Admin quota commands shared by every front end: show | set | grant | reset | block | unblock | top."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.core.errors import ImagineError
from bot.core.ports import QuotaLedger
from bot.core.quota import UNLIMITED, Period

USAGE = (
    "Usage: show USER | set USER CREDITS|unlimited|default [day|week|month] | "
    "set-workspace CREDITS|unlimited|default [day|week|month] | grant USER CREDITS | reset USER | "
    "block USER | unblock USER | top [N]"
)
ADMIN_ACTIONS = ("show", "set", "set-workspace", "grant", "reset", "block", "unblock", "top")


@dataclass(frozen=True)
class AdminCommand:
    """One parsed admin command; user ids are already in the platform's plain form."""

    action: str
    user_id: str | None = None
    credits: int | None = None  # UNLIMITED for unlimited, None for "back to the default"
    period: Period | None = None
    limit: int = 10


def parse_admin(words: list[str]) -> AdminCommand:
    """Parse `words` (after the adapter turned mentions into ids) or raise with USAGE."""
    if not words or words[0].lower() not in ADMIN_ACTIONS:
        raise ImagineError(f"Unknown quota command. {USAGE}")
    action, rest = words[0].lower(), words[1:]
    if action == "top":
        return AdminCommand("top", limit=_int(rest[0], "N", 1, 100) if rest else 10)
    if action == "set-workspace":
        if not rest:
            raise ImagineError(f"set-workspace needs a number of credits. {USAGE}")
        return AdminCommand(action, credits=_credits(rest[0]), period=_period(rest[1:]))
    if not rest:
        raise ImagineError(f"{action} needs a user. {USAGE}")
    user = rest[0]
    if action == "set":
        if len(rest) < 2:
            raise ImagineError(f"set needs a number of credits. {USAGE}")
        return AdminCommand(action, user, credits=_credits(rest[1]), period=_period(rest[2:]))
    if action == "grant":
        if len(rest) < 2:
            raise ImagineError(f"grant needs a number of credits. {USAGE}")
        return AdminCommand(action, user, credits=_int(rest[1], "credits", 1, 1_000_000))
    return AdminCommand(action, user)


async def run_admin(quota: QuotaLedger, scope: str, command: AdminCommand,
                    mention: str = "{user}") -> str:
    """Carry out an admin command in `scope`; returns the sentence to show the admin."""
    user = command.user_id or ""
    who = mention.format(user=user)
    if command.action == "show":
        status = await quota.status(scope, user)
        return f"{who}: " + status.sentence().replace("You have", "has").replace("You are", "is")
    if command.action == "set":
        await quota.set_user(scope, user, command.credits, command.period)
        return f"{who} now has {_describe(command.credits, command.period)}."
    if command.action == "set-workspace":
        await quota.set_workspace(scope, command.credits, command.period)
        return f"Everyone here now has {_describe(command.credits, command.period)}."
    if command.action == "grant":
        await quota.grant(scope, user, command.credits or 0)
        return f"Granted {command.credits} one-off credits to {who}."
    if command.action == "reset":
        await quota.reset(scope, user)
        return f"{who}'s usage this period is reset to 0."
    if command.action in ("block", "unblock"):
        await quota.set_blocked(scope, user, command.action == "block")
        return f"{who} is {command.action}ed."
    rows = await quota.top(scope, command.limit, since=time.time() - 30 * 86400)
    if not rows:
        return "Nobody has spent credits here in the last 30 days."
    lines = [f"{i}. {mention.format(user=u)}: {n} credits" for i, (u, n) in enumerate(rows, 1)]
    return "Top spenders, last 30 days:\n" + "\n".join(lines)


def _describe(credits: int | None, period: Period | None) -> str:
    if credits == UNLIMITED:
        return "unlimited credits"
    if credits is None:
        return "the default allowance"
    return f"{credits} credits per {(period or Period.DAY).value if period else 'period'}"


def _credits(word: str) -> int | None:
    lowered = word.lower()
    if lowered == "unlimited":
        return UNLIMITED
    if lowered == "default":
        return None
    return _int(word, "credits", 0, 1_000_000)


def _period(words: list[str]) -> Period | None:
    if not words:
        return None
    try:
        return Period(words[0].lower())
    except ValueError:
        raise ImagineError(f"period {words[0][:20]!r} is not allowed: day, week or month.") from None


def _int(word: str, name: str, low: int, high: int) -> int:
    try:
        value = int(word)
    except ValueError:
        raise ImagineError(
            f"{name} {word[:20]!r} is not allowed: a whole number from {low} to {high}."
        ) from None
    if not low <= value <= high:
        raise ImagineError(f"{name} {value} is not allowed: a whole number from {low} to {high}.")
    return value
