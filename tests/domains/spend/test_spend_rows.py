"""The spend row validator: exact minor units from decimal strings and micros, never floats;
per-row errors with the row's index."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skeldir.base.money import MINOR_UNIT_EXPONENTS
from skeldir.domains.spend.rows import (
    MAX_ID_LENGTH,
    PLATFORMS,
    RowErrors,
    SpendRow,
    micros_to_minor,
    validate,
    validate_all,
)


def row(**overrides) -> dict:
    base = {"date": "2026-12-01", "platform": "meta", "account_id": "act_1",
            "campaign_id": "c1", "campaign_name": "Spring", "adset_id": "s1",
            "adset_name": "Lookalike", "ad_id": "a1", "ad_name": "Video",
            "currency": "USD", "spend": "50.00", "impressions": 1000, "clicks": 40}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_a_full_row_becomes_minor_units() -> None:
    result = validate(row(), 0)
    assert result == SpendRow(
        day=date(2026, 12, 1), platform="meta", account_id="act_1", campaign_id="c1",
        adset_id="s1", ad_id="a1", campaign_name="Spring", adset_name="Lookalike",
        ad_name="Video", currency="USD", spend_minor=5000, impressions=1000, clicks=40)


def test_ad_set_ad_and_counts_are_optional() -> None:
    result = validate(row(adset_id=None, adset_name=None, ad_id=None, ad_name=None,
                          impressions=None, clicks=None), 3)
    assert isinstance(result, SpendRow)
    assert (result.adset_id, result.ad_id, result.impressions, result.clicks) == ("", "", 0, 0)


def test_csv_text_counts_and_micros_are_read_exactly() -> None:
    result = validate(row(spend=None, spend_micros="12000000", impressions="7", clicks="0",
                          currency="JPY"), 0)
    assert isinstance(result, SpendRow) and result.spend_minor == 12


def test_every_wrong_field_is_named_with_the_row_index() -> None:
    result = validate(row(date="2026-02-30", platform="myspace", account_id="",
                          currency="usd", spend="1.005", impressions=-1, clicks=1.5,
                          ad_id="x" * (MAX_ID_LENGTH + 1), extra="?"), 7)
    assert isinstance(result, RowErrors) and result.index == 7
    text = " | ".join(result.errors)
    for field in ("date", "platform", "account_id", "currency", "impressions", "clicks",
                  "ad_id", "unknown fields: extra"):
        assert field in text, (field, text)


def test_a_json_number_is_refused_as_spend() -> None:
    result = validate(row(spend=50.0), 0)
    assert isinstance(result, RowErrors) and "decimal string" in result.errors[0]


def test_spend_and_micros_are_exclusive_and_one_is_required() -> None:
    assert isinstance(validate(row(spend_micros=1_000_000), 0), RowErrors)
    assert isinstance(validate(row(spend=None), 0), RowErrors)


def test_negative_spend_and_too_fine_micros_are_refused() -> None:
    assert isinstance(validate(row(spend="-1.00"), 0), RowErrors)
    assert isinstance(validate(row(spend=None, spend_micros=1_234_567), 0), RowErrors)


def test_validate_all_splits_by_index() -> None:
    valid, invalid = validate_all([row(), "nope", row(platform="x")], first_index=10)
    assert len(valid) == 1 and [e.index for e in invalid] == [11, 12]


currencies = st.sampled_from(sorted(MINOR_UNIT_EXPONENTS))


@given(currency=currencies, minor=st.integers(min_value=0, max_value=10**15))
def test_decimal_text_round_trips_to_the_same_minor_units(currency: str, minor: int) -> None:
    places = MINOR_UNIT_EXPONENTS[currency]
    text = str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places)))
    result = validate(row(currency=currency, spend=text), 0)
    assert isinstance(result, SpendRow) and result.spend_minor == minor


@given(currency=currencies, minor=st.integers(min_value=0, max_value=10**12))
def test_micros_give_the_same_minor_units_as_decimal_text(currency: str, minor: int) -> None:
    places = MINOR_UNIT_EXPONENTS[currency]
    if places > 6:
        return
    assert micros_to_minor(minor * 10 ** (6 - places), currency) == minor


@given(currency=currencies, minor=st.integers(min_value=0, max_value=10**12),
       extra=st.integers(min_value=1, max_value=9))
def test_digits_finer_than_the_minor_unit_are_refused_never_rounded(
        currency: str, minor: int, extra: int) -> None:
    places = MINOR_UNIT_EXPONENTS[currency]
    text = str(Decimal(minor * 10 + extra).scaleb(-(places + 1)))
    assert isinstance(validate(row(currency=currency, spend=text), 0), RowErrors)


# The drawing, not the validator, is what a loaded machine makes slow.
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(
    st.sampled_from(["date", "platform", "account_id", "campaign_id", "adset_id", "ad_id",
                     "currency", "spend", "spend_micros", "impressions", "clicks", "other"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
              st.sampled_from(["2026-12-01", "USD", "meta", "10.00", "7"])),
))
def test_any_document_is_a_row_or_errors_never_an_exception(document: dict) -> None:
    result = validate(document, 5)
    if isinstance(result, SpendRow):
        assert result.platform in PLATFORMS and result.spend_minor >= 0
        assert result.account_id and result.campaign_id
    else:
        assert result.index == 5 and result.errors
