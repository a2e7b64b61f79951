"""The budget's rules: prices, periods, the limit, warn_at and their sentences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.alerts import Observation, budget_alerts, failing, low_credits
from bot.core.budget import BudgetRules, BudgetStatus
from bot.core.catalog import Catalog
from bot.core.quota import Period
from bot.core.request import build_request

NOW = datetime(2025, 3, 12, 15, 30, tzinfo=UTC)  # a Wednesday


def status(spent: float, limit: float = 10.0, warn_at: float = 0.8) -> BudgetStatus:
    start, resets = BudgetRules(period=Period.MONTH).window(NOW)
    return BudgetStatus(Period.MONTH, start, resets, limit, spent, warn_at)


def seen(budget: BudgetStatus, *, refused: bool = False, remaining: float | None = None,
         low: float = 0.0, outcomes: dict[str, tuple[int, int]] | None = None) -> Observation:
    return Observation(budget, refused, remaining, low, outcomes or {})


def test_a_price_is_per_image_at_1024_square_and_default_steps():
    rules = BudgetRules(prices={"chroma": 0.055})
    request = build_request("a fox --model chroma", None, Catalog())

    assert rules.price(request, Catalog()) == 0.055


def test_a_price_scales_with_images_size_and_steps_like_the_credit_cost():
    rules = BudgetRules(prices={"chroma": 0.05})
    request = build_request("a fox --model chroma --n 2 --w 2048 --h 1024 --steps 20", None,
                            Catalog())

    assert rules.price(request, Catalog()) == pytest.approx(0.05 * 2 * 2 * 0.5)


def test_a_model_without_a_price_costs_nothing():
    rules = BudgetRules(prices={})

    assert rules.price(build_request("a fox", None, Catalog()), Catalog()) == 0.0


@pytest.mark.parametrize(("period", "start", "resets"), [
    (Period.DAY, datetime(2025, 3, 12, tzinfo=UTC), datetime(2025, 3, 13, tzinfo=UTC)),
    (Period.WEEK, datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 17, tzinfo=UTC)),
    (Period.MONTH, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
])
def test_the_budget_period_starts_and_resets_at_the_utc_boundary(period, start, resets):
    assert BudgetRules(period=period).window(NOW) == (start, resets)


def test_a_job_that_lands_exactly_on_the_limit_passes():
    assert not BudgetRules(limit=1.0).would_pass(0.7, 0.3)


def test_a_job_that_would_go_past_the_limit_is_refused():
    assert BudgetRules(limit=1.0).would_pass(0.7, 0.31)


def test_no_limit_refuses_nothing():
    assert not BudgetRules(limit=0).would_pass(1e9, 1e9)


def test_a_negative_limit_is_refused_with_a_sentence():
    with pytest.raises(ValueError, match="budget limit must be 0 \\(none\\) or more, not -1"):
        BudgetRules(limit=-1)


def test_the_refusal_says_the_budget_is_used_up_until_the_reset_and_nothing_was_charged():
    sentence = BudgetRules(period=Period.WEEK, limit=5).refusal(NOW).sentence()

    assert sentence == ("The team's image budget for this week is used up until 2025-03-17 "
                        "00:00 UTC; ask an admin. Nothing was charged.")


def test_the_status_sentence_gives_spend_limit_share_and_reset():
    assert status(4.2).sentence() == (
        "4.2 of 10 Segmind credits spent this month (42%); resets 2025-04-01 00:00 UTC.")


def test_without_a_limit_the_status_says_so():
    assert status(4.2, limit=0).sentence() == (
        "4.2 Segmind credits spent this month; no budget limit is set.")


def test_no_budget_alert_below_warn_at():
    assert budget_alerts(seen(status(7.9))) == []


def test_the_warning_alert_comes_at_warn_at_and_is_keyed_by_the_period():
    [alert] = budget_alerts(seen(status(8.0)))

    assert alert.key == "budget-warn:2025-03-01T00:00:00+00:00"
    assert alert.text.startswith("Budget warning: 8 of 10 Segmind credits spent this month (80%")


def test_the_used_up_alert_comes_at_the_limit_beside_the_warning():
    keys = [a.key.split(":")[0] for a in budget_alerts(seen(status(10.0)))]

    assert keys == ["budget-warn", "budget-used"]


def test_a_refused_job_raises_the_used_up_alert_below_the_limit():
    keys = [a.key.split(":")[0] for a in budget_alerts(seen(status(9.5), refused=True))]

    assert "budget-used" in keys


def test_low_credits_holds_below_the_threshold_only():
    assert low_credits(seen(status(0), remaining=4.9, low=5))
    assert not low_credits(seen(status(0), remaining=5, low=5))
    assert not low_credits(seen(status(0), remaining=1, low=0))


def test_a_backend_is_failing_when_more_than_half_of_its_last_jobs_failed():
    outcomes = {"segmind": (11, 20), "worker": (10, 20)}

    assert failing(seen(status(0), outcomes=outcomes)) == {"segmind": (11, 20)}


def test_a_backend_with_fewer_than_five_finished_jobs_is_not_judged():
    assert failing(seen(status(0), outcomes={"fleet": (4, 4)})) == {}
