import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.base import money
from skeldir.domains.ingestion.provider import UnprocessableEvent
from skeldir.domains.providers.payload import (
    PRINTABLE_ID,
    IdFormat,
    optional_bool,
    optional_text_id,
    optional_timestamp,
    optional_unix_time,
    optional_utc_timestamp,
    required_id,
    required_minor_amount,
    required_object,
    required_text_id,
    required_timestamp,
    required_unix_time,
    rfc3339_timestamp,
    unix_seconds,
)

SECRET_LOOKING_VALUE = "alice@example.invalid"
LETTERS_ID = IdFormat("a letters id", re.compile(r"[a-z]+"), max_length=5)


def reason(read, value, *args) -> str:
    with pytest.raises(UnprocessableEvent) as raised:
        read({"field": value}, "field", "order", *args)
    assert raised.value.__cause__ is None
    return str(raised.value)


@pytest.mark.parametrize(
    "read",
    [required_object, required_text_id, required_id, required_minor_amount, required_timestamp,
     required_unix_time],
)
def test_required_readers_name_a_missing_or_null_field(read):
    assert reason(read, None) == "order.field is missing"
    with pytest.raises(UnprocessableEvent, match="order.other is missing"):
        read({}, "other", "order")


@pytest.mark.parametrize(
    ("read", "value", "expected"),
    [
        (required_object, [SECRET_LOOKING_VALUE], "order.field is not an object"),
        (optional_bool, SECRET_LOOKING_VALUE, "order.field is not a boolean"),
        (optional_bool, 1, "order.field is not a boolean"),
        (required_text_id, 42, "order.field is not a string of 1-128 printable characters"),
        (required_text_id, "", "order.field is not a string of 1-128 printable characters"),
        (required_text_id, " A-1", "order.field is not a string of 1-128 printable characters"),
        (required_text_id, "A\n1", "order.field is not a string of 1-128 printable characters"),
        (required_text_id, "A" * 129, "order.field is not a string of 1-128 printable characters"),
        (required_minor_amount, "8490", "order.field is not an integer"),
        (required_minor_amount, True, "order.field is not an integer"),
        (required_minor_amount, 84.9, "order.field is not an integer"),
        (required_minor_amount, -1, "order.field is negative"),
        (required_minor_amount, money.BIGINT_MAX + 1, "order.field is out of range"),
        (optional_unix_time, "1769344497", "order.field is not a unix timestamp"),
        (optional_unix_time, -1, "order.field is not a unix timestamp"),
        (optional_unix_time, 253402300800, "order.field is not a unix timestamp"),
        (optional_timestamp, SECRET_LOOKING_VALUE, "order.field is not an ISO 8601 timestamp"),
        (optional_timestamp, "2026-01-25T12:34:56", "order.field has no UTC offset"),
        (optional_utc_timestamp, "2026-01-25T12:34:56" + "0" * 80,
         "order.field is not an ISO 8601 timestamp"),
    ],
)
def test_readers_reject_with_the_field_named(read, value, expected):
    assert reason(read, value) == expected


def test_text_ids_fit_their_format():
    assert required_text_id({"id": "A-1001 x"}, "id", "data") == "A-1001 x"
    assert required_text_id({"id": "abcde"}, "id", "data", LETTERS_ID) == "abcde"
    assert optional_text_id({}, "id", "data", LETTERS_ID) is None
    for value in ["abcdef", "ab1", "Ab"]:
        assert reason(required_text_id, value, LETTERS_ID) == "order.field is not a letters id"
    assert PRINTABLE_ID.fits("evt_1") and not PRINTABLE_ID.fits("evt_1\x00")


# Values that cannot occur in a reason's own words by chance.
MARKED_TEXT = st.text(alphabet="@#$%^~|<>é", min_size=2)
MARKED_VALUES = (MARKED_TEXT | st.lists(MARKED_TEXT, min_size=1)
                 | st.integers().filter(lambda n: abs(n) >= 10**4)
                 | st.floats(allow_nan=False).filter(lambda f: abs(f) >= 10**4))


@given(MARKED_VALUES)
def test_no_reason_repeats_a_value(value):
    readers = [required_object, optional_bool, required_text_id, required_id,
               required_minor_amount, optional_unix_time, optional_timestamp,
               optional_utc_timestamp]
    for read in readers:
        try:
            read({"field": value}, "field", "order")
        except UnprocessableEvent as rejected:
            assert str(value) not in str(rejected).removeprefix("order.field")


def test_timestamps_come_out_in_utc():
    noon = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)
    assert optional_timestamp({"t": "2026-01-25T13:00:00+01:00"}, "t", "x") == noon
    assert optional_utc_timestamp({"t": "2026-01-25T12:00:00"}, "t", "x") == noon
    assert optional_utc_timestamp({"t": "2026-01-25T13:00:00+01:00"}, "t", "x") == noon
    assert optional_unix_time({"t": int(noon.timestamp())}, "t", "x") == noon
    assert optional_utc_timestamp({}, "t", "x") is None and optional_unix_time({}, "t", "x") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-06T12:00:00Z", datetime(2026, 3, 6, 12, tzinfo=UTC)),
        ("2026-03-06t13:00:00.5+01:00", datetime(2026, 3, 6, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-03-06 12:00:00Z", None),
        ("2026-03-06T12:00:00", None),
        ("2026-02-30T12:00:00Z", None),
        ("2026-03-06T12:00:00.1234567Z", None),
        ("1772798400", None),
    ],
)
def test_rfc3339_timestamps_are_strict(text, expected):
    assert rfc3339_timestamp(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1769344497", 1769344497), ("001", 1), ("1" * 12, int("1" * 12)), ("1" * 13, None),
     ("-1", None), ("1.0", None), ("０１２", None), ("", None)],
)
def test_unix_seconds_are_ascii_digits(text, expected):
    assert unix_seconds(text) == expected
