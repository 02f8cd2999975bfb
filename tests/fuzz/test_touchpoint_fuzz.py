"""Touchpoint validation over hostile items: a Touchpoint that PostgreSQL can store, or a
Rejected that names fields and never repeats what the collector sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hostile import (
    SCRIPT,
    SQL,
    assert_storable,
    bounded_time,
    fuzz_settings,
    hostile_json,
    hostile_text,
)
from skeldir.domains.ingestion.hints import hints_document
from skeldir.domains.ingestion.touchpoints import Rejected, Touchpoint, validate

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
STITCH_KEY = b"k" * 32
FIELDS = ("id", "visitor_id", "occurred_at", "kind", "url", "referrer", "checkout_token",
          "cart_token", "customer_ref", "utm_source", "utm_medium", "utm_campaign", "utm_term",
          "utm_content")
VISIT = {"id": "t-1", "visitor_id": "v-1", "occurred_at": "2026-03-01T10:00:00Z",
         "url": "https://shop.example/?utm_source=google&gclid=G-1"}
times = st.one_of(
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-03-01",
                     "2026-03-01T10:00:00", "2026-03-01T10:00:00+24:00", "yesterday"]),
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    hostile_text,
)
items = st.one_of(
    hostile_json,
    st.fixed_dictionaries(
        {},
        optional={
            **{name: st.one_of(hostile_text, hostile_json) for name in FIELDS},
            "occurred_at": times,
        },
    ),
    st.dictionaries(st.sampled_from(FIELDS), st.one_of(hostile_text, hostile_json)).map(
        lambda changes: {**VISIT, **changes}
    ),
)


@fuzz_settings(examples=400)
@given(item=items)
@example(item={**VISIT, "occurred_at": "0001-01-01T00:00:00+01:00"})
@example(item={**VISIT, "url": "https://shop.example/a\x00?utm_source=%00", "utm_term": "\x00"})
@example(item={**VISIT, "id": SQL, "visitor_id": SCRIPT, "utm_campaign": SCRIPT})
def test_items_become_storable_touchpoints_or_rejections(item):
    result = bounded_time(lambda: validate(item, 7, STITCH_KEY, NOW))
    if isinstance(result, Rejected):
        assert result.index == 7 and result.errors
        for error in result.errors:
            assert SQL not in error and SCRIPT not in error and "\x00" not in error
        return
    assert isinstance(result, Touchpoint)
    assert_storable([result.touchpoint_id, result.visitor_id, hints_document(result.hints)])
    assert result.touchpoint_id.isprintable() and result.visitor_id.isprintable()
    assert result.occurred_at.utcoffset() == timedelta(0)
    assert result.occurred_at <= NOW + timedelta(minutes=5)
    for key in (result.checkout_key, result.cart_key, result.customer_key):
        assert key is None or len(key) == 32


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59+01:00"])
def test_a_time_before_the_first_utc_instant_is_rejected_not_raised(moment):
    # Regression: converting it to UTC raised OverflowError, a 500 for the whole batch.
    result = validate({**VISIT, "occurred_at": moment}, 0, STITCH_KEY, NOW)
    assert isinstance(result, Rejected)
    assert result.errors == ("occurred_at must be an ISO 8601 time with an offset",)
