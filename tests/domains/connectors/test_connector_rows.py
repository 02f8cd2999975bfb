"""Pure parts of a pull: rows split by a breakdown add up per ledger key, nothing lost or
doubled; the scheduled day ranges; the lag per platform."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
