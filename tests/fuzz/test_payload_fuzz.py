"""The payload readers every parser is built from, over hostile values: each returns a value of
its documented type and range, or raises UnprocessableEvent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hostile import (
    HOSTILE_TEXT,
    assert_storable,
    bounded_time,
    encode,
    fuzz_settings,
    header_values,
    hostile_json,
    hostile_text,
)
from skeldir.base import money
from skeldir.domains.ingestion.provider import UnprocessableEvent
from skeldir.domains.providers import payload

EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# Timestamps that overflow when converted to UTC, or fall outside 1970-9999.
OUT_OF_RANGE_TIMES = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
)


def read(reader, value, *args, **options):
    """reader({"field": value}, "field", "order", ...), or None when it refuses."""
    try:
        return bounded_time(lambda: reader({"field": value}, "field", "order", *args, **options))
    except UnprocessableEvent as refused:
        assert str(refused).startswith("order.field ")
        return None


def in_range(moment: datetime | None) -> bool:
    if moment is None:
        return True
    return moment.utcoffset().total_seconds() == 0 and EARLIEST <= moment <= LATEST


values = st.one_of(hostile_json, st.sampled_from(OUT_OF_RANGE_TIMES))


@fuzz_settings(examples=300)
@given(value=values)
@example(value="0001-01-01T00:00:00+01:00")
@example(value="9999-12-31T23:59:59-01:00")
def test_every_reader_returns_its_type_or_refuses(value):
    assert read(payload.required_object, value) is None or isinstance(value, dict)
    text = read(payload.optional_str, value)
    assert text is None or isinstance(text, str)
    identifier = read(payload.required_id, value)
    assert identifier is None or 0 < identifier <= 2**63 - 1
    text_id = read(payload.optional_text_id, value)
    assert text_id is None or payload.PRINTABLE_ID.fits(text_id)
    minor = read(payload.required_minor_amount, value)
    assert minor is None or 0 <= minor <= money.BIGINT_MAX
    for any_case in (False, True):
        currency = read(payload.required_currency, value, any_case=any_case)
        assert currency is None or currency in money.MINOR_UNIT_EXPONENTS
    for currency in ("USD", "JPY", "KWD", "CLF"):
        amount = read(lambda obj, key, where: payload.required_amount(obj, key, currency, where),
                      value)
        assert amount is None or money.BIGINT_MIN <= amount <= money.BIGINT_MAX
    for reader in (payload.optional_timestamp, payload.optional_utc_timestamp,
                   payload.optional_unix_time):
        assert in_range(read(reader, value))
    assert read(payload.optional_bool, value) in (None, True, False)


@pytest.mark.parametrize("text", OUT_OF_RANGE_TIMES)
def test_timestamps_that_overflow_or_predate_1970_are_refused(text):
    # Regression: "0001-01-01T00:00:00+01:00" raised OverflowError (a 500 at the edge), and a
    # year-1 order would break the attribution window computed back from it.
    for reader in (payload.optional_timestamp, payload.optional_utc_timestamp):
        with pytest.raises(UnprocessableEvent, match="order.field is not a time from 1970"):
            reader({"field": text}, "field", "order")


@fuzz_settings(examples=300)
@given(text=st.one_of(hostile_text, header_values, st.sampled_from(OUT_OF_RANGE_TIMES)))
@example(text="0001-01-01T00:00:00+01:00")
@example(text="9999-12-31T23:59:59-23:59")
def test_signed_header_times_parse_or_are_none(text):
    # Regression: rfc3339_timestamp raised OverflowError for "0001-01-01T00:00:00+01:00", so a
    # PayPal request with that transmission time got a 500 before its signature was checked.
    moment = bounded_time(lambda: payload.rfc3339_timestamp(text))
    assert moment is None or moment.utcoffset().total_seconds() == 0
    seconds = payload.unix_seconds(text)
    assert seconds is None or 0 <= seconds < 10**12


@fuzz_settings(examples=200)
@given(body=st.one_of(hostile_json.map(encode).map(str.encode), st.binary(max_size=500)))
@example(body=b"[" * 100_000)
@example(body=b'{"a":' * 950 + b"1" + b"}" * 950)
@example(body=b'{"amount": 1e400}')
@example(body=b'{"amount": ' + b"9" * 5000 + b"}")
def test_json_bodies_load_as_objects_or_are_refused(body):
    try:
        document = bounded_time(lambda: payload.load_json_object(body))
    except UnprocessableEvent as refused:
        assert str(refused).startswith("body ")
        return
    assert isinstance(document, dict)


@fuzz_settings(examples=200)
@given(
    headers=st.dictionaries(st.sampled_from(["a", "b", "c"]), header_values),
    names=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3),
)
def test_header_value_is_a_stripped_present_value(headers, names):
    value = payload.header_value(headers, *names)
    assert value is None or (value and value in {v.strip() for v in headers.values()})


@fuzz_settings(examples=200)
@given(candidates=st.lists(st.one_of(hostile_json, st.sampled_from(HOSTILE_TEXT)), max_size=4))
def test_stitch_refs_are_printable_bounded_text_or_absent(candidates):
    refs = payload.stitch_refs(
        visitor_id=tuple(candidates), checkout_token=tuple(candidates),
        cart_token=tuple(candidates), customer_ref=tuple(candidates),
    )
    bounds = {"visitor_id": payload.MAX_VISITOR_ID, "checkout_token": payload.MAX_TOKEN,
              "cart_token": payload.MAX_TOKEN, "customer_ref": payload.MAX_CUSTOMER_REF}
    for name, bound in bounds.items():
        value = getattr(refs, name)
        assert value is None or (0 < len(value) <= bound and value.isprintable())
        if value is not None:
            assert_storable(value)
