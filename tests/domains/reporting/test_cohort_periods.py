"""The cohort report's periods and rows, as pure code: months from the 1st, ISO weeks from
Monday, every period of a curve present, an unknown amount never summed as if known."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from skeldir.domains.reporting.cohorts import cohort_rows, period_start, periods_between

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@given(day=days, period=st.sampled_from(("month", "week")))
def test_a_day_falls_in_the_period_that_starts_on_its_period_start(day, period):
    start = period_start(day, period)
    assert start <= day
    if period == "month":
        assert start.day == 1 and (start.year, start.month) == (day.year, day.month)
    else:
        assert start.weekday() == 0 and (day - start).days < 7


@given(first=days, length=st.integers(0, 400), period=st.sampled_from(("month", "week")))
def test_periods_between_are_consecutive_and_cover_both_ends(first, length, period):
    last = first + timedelta(days=length)
    starts = periods_between(first, last, period)
    assert starts[0] == period_start(first, period) and starts[-1] == period_start(last, period)
    for earlier, later in zip(starts, starts[1:]):
        assert period_start(later - timedelta(days=1), period) == earlier


def test_december_rolls_into_january():
    assert periods_between(date(2025, 12, 31), date(2026, 1, 1), "month") == [
        date(2025, 12, 1), date(2026, 1, 1)]


def cell(period: date, revenue: int, unconverted: int = 0) -> dict:
    return {"cohort": date(2026, 1, 1), "channel": "", "period": period, "active_customers": 1,
            "orders": 1, "revenue": revenue, "unconverted": unconverted, "customers": 4,
            "repeat_customers": 1}


def test_a_curve_fills_empty_periods_and_an_unknown_amount_stays_unknown_from_then_on():
    (row,) = cohort_rows([cell(date(2026, 1, 1), 500), cell(date(2026, 3, 1), 0, 1)],
                         "month", date(2026, 4, 30), split=False)
    assert row["channel"] is None and row["repeat_rate"] == 0.25
    assert [(p["start"], p["revenue_cents"], p["cumulative_revenue_cents"])
            for p in row["periods"]] == [
        (date(2026, 1, 1), 500, 500), (date(2026, 2, 1), 0, 500),
        (date(2026, 3, 1), None, None), (date(2026, 4, 1), 0, None)]
    assert row["revenue_cents"] is None and row["unconverted_orders"] == 1
