"""The quota rules on their own, with no database: how a charge splits and when it is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.errors import InsufficientCredits
from bot.core.quota import UNLIMITED, Account, Charge, Period, QuotaRules

MONDAY = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
RULES = QuotaRules(allowance=10, period=Period.DAY, admins_unlimited=True)


def account(allowance: int = 10, used: int = 0, granted: int = 0) -> Account:
    return Account(allowance=allowance, period=Period.DAY, start=MONDAY, used=used,
                   granted=granted, blocked=False)


def test_a_charge_comes_from_the_allowance_first_then_from_grants():
    assert RULES.charge(account(used=8, granted=5), 4, MONDAY) == Charge(2, 2)


def test_a_charge_past_the_balance_is_refused_with_the_balance_and_the_reset():
    with pytest.raises(InsufficientCredits) as refused:
        RULES.charge(account(used=9, granted=1), 3, MONDAY)

    assert refused.value.sentence() == ("That costs 3 credits and you have 2 left; your "
                                        "allowance resets 2026-11-17 00:00 UTC. Nothing was "
                                        "charged.")


def test_an_unlimited_allowance_pays_nothing():
    assert RULES.unlimited(account(allowance=UNLIMITED), is_admin=False)


def test_admins_are_unlimited_only_while_the_config_says_so():
    assert RULES.unlimited(account(), is_admin=True)
    assert not QuotaRules(admins_unlimited=False).unlimited(account(), is_admin=True)


def test_the_status_of_an_unlimited_user_shows_no_balance():
    status = RULES.status(account(allowance=UNLIMITED), "s", "u", is_admin=False, now=MONDAY)

    assert (status.balance, status.allowance, status.unlimited) == (None, None, True)


def test_a_charge_once_the_allowance_is_used_up_comes_wholly_from_grants():
    assert RULES.charge(account(used=10, granted=5), 2, MONDAY) == Charge(0, 2)


def test_a_blocked_user_hears_so_from_quota():
    blocked = Account(allowance=10, period=Period.DAY, start=MONDAY, used=0, granted=0,
                      blocked=True)

    status = RULES.status(blocked, "s", "u", is_admin=False, now=MONDAY)

    assert status.sentence() == "You are blocked from generating images here; ask an admin."


def test_an_unlimited_user_hears_so_from_quota():
    status = RULES.status(account(allowance=UNLIMITED), "s", "u", is_admin=False, now=MONDAY)

    assert status.sentence() == "You have unlimited credits here."


def test_quota_counts_grants_apart_from_the_allowance():
    status = RULES.status(account(used=4, granted=3), "s", "u", is_admin=False, now=MONDAY)

    assert status.sentence() == ("You have 9 credits left: 10 per day plus 3 granted, 4 used. "
                                 "Resets 2026-11-17 00:00 UTC.")
