"""The cost of a request in credits, and the UTC periods allowances reset on.

cost = ceil(base[model] x samples x (width x height / 1024^2) x (steps / default_steps[model]))
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Settings
from bot.core.catalog import ALL_MODELS, Catalog
from bot.core.quota import Period, period_end, period_start, request_cost
from bot.core.request import ImagineRequest, build_request

CATALOG = Catalog()


def request(catalog: Catalog = CATALOG, **options: Any) -> ImagineRequest:
    return build_request("a red fox", options, catalog, random_seed=lambda: 1)


def cost(catalog: Catalog = CATALOG, **options: Any) -> int:
    return request_cost(request(catalog, **options), catalog)


# --- the formula -------------------------------------------------------------------------------


def test_flux_schnell_at_its_defaults_costs_exactly_1_credit():
    assert cost() == 1


def test_kolors_at_its_defaults_costs_its_base_of_2():
    assert cost(model="kolors") == 2


def test_chroma_at_its_defaults_costs_its_base_of_4():
    assert cost(model="chroma") == 4


def test_the_cost_scales_with_the_number_of_images():
    assert cost(samples=4) == 4
    assert cost(model="kolors", samples=10) == 20


def test_the_cost_scales_with_megapixels():
    assert cost(width=2048, height=2048) == 4
    assert cost(width=1024, height=2048) == 2


def test_the_cost_scales_with_steps_over_the_model_s_default_steps():
    assert cost(steps=8) == 2
    assert cost(model="chroma", steps=20) == 2
    assert cost(model="kolors", steps=50) == 4


def test_a_fractional_cost_is_rounded_up():
    assert cost(steps=5) == 2  # 1.25
    assert cost(model="kolors", steps=30) == 3  # 2.4
    assert cost(model="chroma", steps=75) == 8  # 7.5


def test_a_request_smaller_than_a_credit_still_costs_1():
    assert cost(width=512, height=512, steps=1) == 1  # 1/16


def test_a_preset_just_under_a_megapixel_costs_the_base():
    assert cost(aspect_ratio="16:9") == 1  # 1344 x 768 = 0.984 MP


def test_a_request_just_over_a_megapixel_costs_a_second_credit():
    assert cost(width=640, height=1640) == 2  # 1,049,600 pixels = 1.001 MP


def test_float_noise_never_costs_an_extra_credit():
    # 2 x 2 x (1600 x 1024 / 1024^2) x 28 / 25 is exactly 7; floats give 7.000000000000001
    assert cost(model="kolors", width=1600, height=1024, samples=2, steps=28) == 7


def test_the_cost_of_a_model_the_catalog_does_not_offer_is_an_error():
    chroma_request = request(model="chroma")
    with pytest.raises(ValueError, match="chroma"):
        request_cost(chroma_request, CATALOG.narrowed(allowed_models=("kolors",)))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), spec=st.sampled_from(ALL_MODELS))
def test_the_cost_is_exactly_the_ceiling_of_the_formula(data, spec):
    m = spec.size_multiple
    width = data.draw(st.integers(int(spec.width.low) // m, int(spec.width.high) // m)) * m
    height = data.draw(st.integers(int(spec.height.low) // m, int(spec.height.high) // m)) * m
    steps = data.draw(st.integers(int(spec.steps.low), int(spec.steps.high)))
    samples = data.draw(st.integers(int(spec.samples.low), int(spec.samples.high)))
    got = cost(model=spec.name, width=width, height=height, steps=steps, samples=samples)
    exact = Fraction(int(spec.base_cost) * samples * width * height * steps, 1024 * 1024 * spec.default_steps)
    assert got == max(1, math.ceil(exact))


# --- base costs from config -------------------------------------------------------------------


def test_a_base_cost_from_config_prices_that_model():
    catalog = CATALOG.narrowed(base_costs={"chroma": 10})
    assert cost(catalog, model="chroma") == 10


def test_a_fractional_base_cost_from_config_is_rounded_up_per_request():
    catalog = CATALOG.narrowed(base_costs={"kolors": 1.5})
    assert cost(catalog, model="kolors") == 2
    assert cost(catalog, model="kolors", samples=2) == 3


def test_the_base_costs_in_quota_config_reach_the_catalog(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('[quota]\nbase_costs = { flux-schnell = 3, kolors = 2, chroma = 4 }\n')
    catalog = Settings.load(config, {}).build_catalog()
    assert cost(catalog) == 3


def test_the_default_config_prices_flux_1_kolors_2_chroma_4(tmp_path: Path):
    catalog = Settings.load(tmp_path / "none.toml", {}).build_catalog()
    assert [cost(catalog, model=m) for m in ("flux-schnell", "kolors", "chroma")] == [1, 2, 4]


# --- periods --------------------------------------------------------------------------------------


NOW = datetime(2025, 3, 12, 15, 30, 45, 123456, tzinfo=UTC)  # a Wednesday


def test_a_day_starts_at_midnight_utc():
    assert period_start(Period.DAY, NOW) == datetime(2025, 3, 12, tzinfo=UTC)


def test_a_day_ends_at_the_next_midnight_utc():
    assert period_end(Period.DAY, NOW) == datetime(2025, 3, 13, tzinfo=UTC)


def test_a_week_starts_on_monday_at_midnight_utc():
    assert period_start(Period.WEEK, NOW) == datetime(2025, 3, 10, tzinfo=UTC)


def test_a_week_ends_on_the_next_monday_at_midnight_utc():
    assert period_end(Period.WEEK, NOW) == datetime(2025, 3, 17, tzinfo=UTC)


def test_on_a_monday_the_week_starts_that_same_day():
    monday = datetime(2025, 3, 10, 0, 0, 1, tzinfo=UTC)
    assert period_start(Period.WEEK, monday) == datetime(2025, 3, 10, tzinfo=UTC)


def test_a_month_starts_on_the_first_at_midnight_utc():
    assert period_start(Period.MONTH, NOW) == datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "end"),
    [
        (datetime(2025, 1, 31, 23, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
        (datetime(2025, 12, 15, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_month_ends_on_the_first_of_the_next_month(now, end):
    assert period_end(Period.MONTH, now) == end


def test_periods_follow_utc_not_the_time_zone_of_the_time_given():
    # 01:30 on the 1st in UTC+5 is still the last day of the previous month in UTC.
    local = datetime(2025, 4, 1, 1, 30, tzinfo=timezone(timedelta(hours=5)))
    assert period_start(Period.DAY, local) == datetime(2025, 3, 31, tzinfo=UTC)
    assert period_start(Period.MONTH, local) == datetime(2025, 3, 1, tzinfo=UTC)


def test_one_microsecond_before_a_boundary_is_still_the_old_period():
    just_before = datetime(2025, 3, 13, tzinfo=UTC) - timedelta(microseconds=1)
    assert period_end(Period.DAY, just_before) == datetime(2025, 3, 13, tzinfo=UTC)


def test_a_boundary_itself_starts_the_new_period():
    midnight = datetime(2025, 3, 13, tzinfo=UTC)
    assert period_start(Period.DAY, midnight) == midnight


@settings(max_examples=200, deadline=None)
@given(
    period=st.sampled_from(list(Period)),
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1), timezones=st.just(UTC)
    ),
)
def test_now_always_lies_in_its_period_and_the_period_starts_at_midnight_utc(period, now):
    start, end = period_start(period, now), period_end(period, now)
    assert start <= now < end
    assert start.utcoffset() == timedelta(0) and end.utcoffset() == timedelta(0)
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert period_start(period, end) == end  # the end is the next period's start
    assert timedelta(days=1) <= end - start <= timedelta(days=31)


def test_the_periods_are_day_week_and_month():
    assert [p.value for p in Period] == ["day", "week", "month"]


def test_an_admins_max_steps_never_raises_the_price_of_a_request():
    narrowed = Catalog().narrowed(max_steps=20)
    request = build_request("a fox --model chroma --steps 20", None, narrowed)
    assert request_cost(request, narrowed) == request_cost(request, Catalog()) == 2


@pytest.fixture
def host_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+9, as on a server set to Asia/Tokyo."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_day_starts_at_midnight_utc_whatever_the_hosts_time_zone(host_in_tokyo):
    evening_utc = datetime(2025, 3, 12, 20, 0, tzinfo=UTC)  # already the 13th in Tokyo
    assert period_start(Period.DAY, evening_utc) == datetime(2025, 3, 12, tzinfo=UTC)
    assert period_end(Period.DAY, evening_utc) == datetime(2025, 3, 13, tzinfo=UTC)
