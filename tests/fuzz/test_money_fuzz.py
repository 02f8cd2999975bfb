"""Money over hostile amounts and currency codes: exact minor units in bigint range, or
MoneyError; never a float, a rounding, or another exception."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from hostile import HOSTILE_TEXT, bounded_time, fuzz_settings, hostile_json, hostile_text
from skeldir.base import money

currencies = st.one_of(
    st.sampled_from(sorted(money.MINOR_UNIT_EXPONENTS)),
    st.sampled_from(["usd", "XAU", "", "USD\x00", "U$D", "EURO"]),
    hostile_text,
    hostile_json,
)
decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("sNaN"), Decimal("-0"), Decimal("1E+999999999"),
                     Decimal("1E-999999999"), Decimal("0E+999999"),
                     Decimal("-9223372036854775808E-2"),
                     Decimal("99999999999999999999999.99")]),
    st.builds(lambda digits, exponent: Decimal((0, digits, exponent)),
              st.lists(st.integers(0, 9), min_size=1, max_size=40),
              st.integers(-10**6, 10**6)),
)
amounts = st.one_of(
    decimals,
    st.integers(),
    st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, True, False, None, 1.5, float("nan")]),
    st.sampled_from(HOSTILE_TEXT),
    st.from_regex(r"-?[0-9]{1,70}(\.[0-9]{1,70})?", fullmatch=True),
    hostile_text,
)


@fuzz_settings(examples=500)
@given(amount=amounts, currency=currencies)
@example(amount="99999999999999999999999.99", currency="USD")
@example(amount=Decimal("1E+999999999"), currency="USD")
@example(amount="9" * 64, currency="JPY")
def test_to_minor_is_exact_in_range_or_a_money_error(amount, currency):
    try:
        minor = bounded_time(lambda: money.to_minor(amount, currency))
    except money.MoneyError:
        return
    assert type(minor) is int and money.BIGINT_MIN <= minor <= money.BIGINT_MAX
    exact = Decimal(amount) if isinstance(amount, str | int | Decimal) else None
    assert exact is not None and exact.scaleb(money.exponent(currency)) == minor


@fuzz_settings(examples=300)
@given(
    minor=st.one_of(st.integers(money.BIGINT_MIN, money.BIGINT_MAX), st.integers()),
    currency=currencies,
)
def test_format_minor_reads_back_or_is_a_money_error(minor, currency):
    try:
        text = money.format_minor(minor, currency)
    except money.MoneyError:
        return
    if money.BIGINT_MIN <= minor <= money.BIGINT_MAX:
        assert money.to_minor(text, currency) == minor


@fuzz_settings(examples=200)
@given(currency=currencies)
def test_exponent_is_a_known_digit_count_or_a_money_error(currency):
    try:
        places = money.exponent(currency)
    except money.MoneyError:
        return
    assert places in (0, 2, 3, 4)
