from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.base.money import (
    BIGINT_MAX,
    BIGINT_MIN,
    MINOR_UNIT_EXPONENTS,
    MoneyError,
    exponent,
    format_minor,
    to_minor,
)

currencies = st.sampled_from(sorted(MINOR_UNIT_EXPONENTS))
bigints = st.integers(min_value=BIGINT_MIN, max_value=BIGINT_MAX)


@pytest.mark.parametrize(
    ("currency", "places"),
    [("JPY", 0), ("KRW", 0), ("XOF", 0), ("USD", 2), ("EUR", 2), ("AUD", 2), ("KWD", 3),
     ("BHD", 3), ("TND", 3), ("CLF", 4), ("UYW", 4)],
)
def test_exponent_follows_iso_4217(currency, places):
    assert exponent(currency) == places


@pytest.mark.parametrize("code", ["usd", "XXX", "XAU", "US", "USDD", "", " USD", None, 840])
def test_exponent_rejects_unknown_or_malformed_codes(code):
    with pytest.raises(MoneyError):
        exponent(code)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("10.50", "USD", 1050),
        ("10.5", "USD", 1050),
        ("10", "USD", 1000),
        ("-3.20", "USD", -320),
        ("0.00", "USD", 0),
        ("-0.00", "USD", 0),
        ("10.500", "USD", 1050),
        ("007.10", "USD", 710),
        ("1500", "JPY", 1500),
        ("1500.00", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("1.2", "KWD", 1200),
        ("0.0001", "CLF", 1),
        (12, "USD", 1200),
        (12, "JPY", 12),
        (Decimal("10.5"), "USD", 1050),
        (Decimal("1E+3"), "USD", 100000),
        (Decimal("-0.10"), "KWD", -100),
        ("92233720368547758.07", "USD", BIGINT_MAX),
        ("-92233720368547758.08", "USD", BIGINT_MIN),
    ],
)
def test_to_minor_is_exact(amount, currency, minor):
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("10.505", "USD"),  # not rounded
        ("10.5", "JPY"),
        ("1.2345", "KWD"),
        (Decimal("0.001"), "USD"),
        (Decimal("1E-999999999"), "USD"),
        ("92233720368547758.08", "USD"),  # one past bigint
        ("-92233720368547758.09", "USD"),
        ("9223372036854775808", "JPY"),
        (2**63, "JPY"),
        (Decimal("1E+999999999"), "USD"),
        ("1" * 5000, "USD"),
        (10.5, "USD"),
        (float("nan"), "USD"),
        (True, "USD"),
        (None, "USD"),
        (Decimal("NaN"), "USD"),
        (Decimal("Infinity"), "USD"),
        (Decimal("-Infinity"), "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("1e3", "USD"),
        ("1E3", "USD"),
        ("", "USD"),
        ("-", "USD"),
        (".5", "USD"),
        ("10.", "USD"),
        ("+10", "USD"),
        (" 10", "USD"),
        ("10 ", "USD"),
        ("10\n", "USD"),
        ("1_000", "USD"),
        ("1,000.00", "USD"),
        ("١٠", "USD"),  # Arabic-Indic digits pass str.isdigit but are not amounts
        ("0x10", "USD"),
        ("--1", "USD"),
        ("10.50", "XXX"),
        ("10.50", "usd"),
    ],
)
def test_to_minor_rejects_inexact_out_of_range_or_garbage(amount, currency):
    with pytest.raises(MoneyError):
        to_minor(amount, currency)


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(1050, "USD", "10.50"), (-5, "USD", "-0.05"), (0, "USD", "0.00"), (1050, "JPY", "1050"),
     (1234, "KWD", "1.234"), (-1, "CLF", "-0.0001")],
)
def test_format_minor(minor, currency, text):
    assert format_minor(minor, currency) == text


@given(bigints, currencies)
def test_format_then_parse_is_identity(minor, currency):
    assert to_minor(format_minor(minor, currency), currency) == minor


@given(bigints, currencies)
def test_decimal_and_text_agree(minor, currency):
    text = format_minor(minor, currency)
    assert to_minor(Decimal(text), currency) == minor


@given(st.integers(min_value=BIGINT_MAX + 1) | st.integers(max_value=BIGINT_MIN - 1), currencies)
def test_values_beyond_bigint_are_rejected_not_truncated(minor, currency):
    with pytest.raises(MoneyError):
        to_minor(format_minor(minor, currency), currency)


@given(st.floats(allow_nan=True, allow_infinity=True), currencies)
def test_floats_are_always_rejected(amount, currency):
    with pytest.raises(MoneyError):
        to_minor(amount, currency)


@given(st.text(max_size=30), currencies)
def test_any_text_is_exact_or_rejected(text, currency):
    try:
        minor = to_minor(text, currency)
    except MoneyError:
        return
    assert Decimal(text) * 10 ** exponent(currency) == minor
