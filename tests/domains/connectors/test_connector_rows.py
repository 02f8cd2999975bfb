"""Pure parts of a pull: rows split by a breakdown add up per ledger key, nothing lost or
doubled; finer amounts round half up to the minor unit; the scheduled day ranges; the lag per
platform."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.base.money import exponent, to_minor
from skeldir.domains.connectors.amounts import round_decimal
from skeldir.domains.connectors.platform import PlatformError
from skeldir.domains.connectors.pulls import (
    Scheduled,
    lag_by_platform,
    recent_days,
    restated_days,
    summed,
)
from skeldir.domains.spend.rows import SpendRow

rows = st.lists(st.builds(
    lambda day, ad, spend, clicks: SpendRow(
        day=date(2026, 12, day), platform="meta", account_id="act_1", campaign_id="c",
        adset_id="s", ad_id=ad, campaign_name="", adset_name="", ad_name=ad, currency="EUR",
        spend_minor=spend, impressions=clicks * 10, clicks=clicks),
    st.integers(1, 3), st.sampled_from(["a", "b", "c"]), st.integers(0, 10**12),
    st.integers(0, 10**6)), max_size=30)


@given(rows)
def test_summed_rows_keep_every_keys_totals_and_one_row_per_key(given_rows) -> None:
    expected_spend, expected_clicks = Counter(), Counter()
    for row in given_rows:
        expected_spend[row.key] += row.spend_minor
        expected_clicks[row.key] += row.clicks
    result = summed(given_rows)
    assert len({r.key for r in result}) == len(result)
    assert {r.key: r.spend_minor for r in result} == {k: expected_spend[k] for k in expected_spend}
    assert {r.key: r.clicks for r in result} == {k: expected_clicks[k] for k in expected_clicks}


def test_one_ad_and_day_in_two_currencies_is_refused() -> None:
    row = SpendRow(date(2026, 12, 1), "meta", "act_1", "c", "s", "a", "", "", "", "EUR", 1, 0, 0)
    with pytest.raises(PlatformError, match="two currencies"):
        summed([row, SpendRow(**{**{f: getattr(row, f) for f in SpendRow.__slots__},
                                 "currency": "USD"})])


def test_the_scheduled_ranges() -> None:
    today = date(2026, 12, 7)
    assert recent_days(today) == (date(2026, 12, 6), today)
    assert restated_days(today, 28) == (date(2026, 11, 10), today)
    assert (today - restated_days(today, 28)[0]).days + 1 == 28


def test_lag_is_the_oldest_last_success_of_the_platforms_connectors() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
    connectors = [Scheduled(None, None, "meta", "ok", now - timedelta(hours=1), False),
                  Scheduled(None, None, "meta", "error", now - timedelta(hours=5), False),
                  Scheduled(None, None, "meta", "needs_reauth", now - timedelta(days=9), False),
                  Scheduled(None, None, "tiktok", "pending", None, False)]
    assert lag_by_platform(connectors, now) == {"meta": 9 * 86400.0, "google_ads": 0.0,
                                                "tiktok": 0.0}


@pytest.mark.parametrize(("amount", "currency", "expected"), [
    ("12.3456", "USD", "12.35"), ("12.344", "USD", "12.34"), ("12.345", "USD", "12.35"),
    ("1200.5", "JPY", "1201"), ("0.0004", "KWD", "0.000"), ("80.0", "USD", "80.0"),
    ("161.45", "USD", "161.45"), ("abc", "USD", "abc"), ("NaN", "USD", "NaN"),
    ("1.234", "XXX1", "1.234"), (1.5, "USD", 1.5), ("1.234", None, "1.234"),
])
def test_finer_decimal_amounts_round_half_up_and_the_rest_is_left_to_validation(
        amount, currency, expected) -> None:
    assert round_decimal(amount, currency) == expected


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False),
       st.sampled_from(["USD", "JPY", "KWD"]))
def test_a_rounded_amount_is_within_half_a_minor_unit(amount, currency) -> None:
    rounded = round_decimal(str(amount), currency)
    unit = Decimal(1).scaleb(-exponent(currency))
    assert abs(Decimal(rounded) - amount) <= unit / 2
    to_minor(rounded, currency)  # the ledger accepts it
