"""One spend row: its fields, their limits, and the validation of an untrusted row into it.

Pure: no database, no clock. A row arrives as a mapping of text or JSON values (a CSV line or an
API item); it becomes a `SpendRow` with spend in exact minor units of its currency, or a
`RowErrors` naming each field that is wrong and the row's index in its batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from skeldir.base.money import BIGINT_MAX, BIGINT_MIN, MoneyError, exponent, to_minor
from skeldir.domains.ingestion.campaign_keys import PLATFORMS
MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 500
# Counts beyond a bigint are no platform's figures.
MAX_COUNT = BIGINT_MAX
MICROS_EXPONENT = 6

REQUIRED_FIELDS = ("date", "platform", "account_id", "campaign_id", "currency")
ID_FIELDS = ("account_id", "campaign_id", "adset_id", "ad_id")
NAME_FIELDS = ("campaign_name", "adset_name", "ad_name")
COUNT_FIELDS = ("impressions", "clicks")
# A row carries its spend as a decimal string, or as micros where a platform reports them.
AMOUNT_FIELDS = ("spend", "spend_micros")
FIELDS = ("date", "platform", *ID_FIELDS, *NAME_FIELDS, "currency", *AMOUNT_FIELDS, *COUNT_FIELDS)

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGITS = re.compile(r"[0-9]{1,19}")
# One C-speed scan for a control character (below U+0020), where a loop over code points per
# row made validation the slowest step of a load.
_CONTROL = re.compile(r"[\x00-\x1f]")
_KNOWN_FIELDS = frozenset(FIELDS)


@dataclass(frozen=True, slots=True)
class SpendRow:
    day: date
    platform: str
    account_id: str
    campaign_id: str
    adset_id: str
    ad_id: str
    campaign_name: str
    adset_name: str
    ad_name: str
    currency: str
    spend_minor: int
    impressions: int
    clicks: int

    @property
    def key(self) -> tuple:
        """What a row describes: loading the same key again replaces its figures."""
        return (self.day, self.platform, self.account_id, self.campaign_id, self.adset_id,
                self.ad_id)


@dataclass(frozen=True, slots=True)
class RowErrors:
    index: int
    errors: tuple[str, ...]


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _text(row: Mapping[str, Any], field: str, limit: int, errors: list[str]) -> str:
    value = row.get(field)
    if _blank(value):
        return ""
    if not isinstance(value, str):
        errors.append(f"{field}: must be text")
        return ""
    if len(value) > limit:
        errors.append(f"{field}: at most {limit} characters")
    elif value != value.strip() or _CONTROL.search(value):
        errors.append(f"{field}: no leading or trailing spaces or control characters")
    return value


def _count(row: Mapping[str, Any], field: str, errors: list[str]) -> int:
    value = row.get(field)
    if _blank(value):
        return 0
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        errors.append(f"{field}: must be a whole number from 0")
        return 0
    return value


def _day(value: Any, errors: list[str]) -> date | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        errors.append("date: must be a date as YYYY-MM-DD")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append("date: not a calendar date")
        return None


def micros_to_minor(micros: int, currency: str) -> int:
    """Exact minor units of an amount in millionths (Google Ads' cost_micros); MoneyError when
    the micros hold more precision than the currency's minor unit."""
    dropped = MICROS_EXPONENT - exponent(currency)
    minor, rest = divmod(micros, 10**dropped)
    if rest:
        raise MoneyError("amount has more fractional digits than the currency allows")
    if not BIGINT_MIN <= minor <= BIGINT_MAX:
        raise MoneyError("amount does not fit in a bigint of minor units")
    return minor


def _spend(row: Mapping[str, Any], currency: str | None, errors: list[str]) -> int:
    spend, micros = row.get("spend"), row.get("spend_micros")
    if _blank(spend) == _blank(micros):
        errors.append("spend: give exactly one of spend (a decimal string) or spend_micros")
        return 0
    if currency is None:
        return 0
    try:
        if not _blank(spend):
            if not isinstance(spend, str):
                # A JSON number may already have been rounded through a float.
                raise MoneyError("must be a decimal string such as \"50.00\"")
            minor = to_minor(spend, currency)
        else:
            if isinstance(micros, str) and _DIGITS.fullmatch(micros):
                micros = int(micros)
            if isinstance(micros, bool) or not isinstance(micros, int):
                raise MoneyError("spend_micros must be a whole number")
            minor = micros_to_minor(micros, currency)
    except MoneyError as error:
        errors.append(f"spend: {error}")
        return 0
    if minor < 0:
        errors.append("spend: must not be negative")
    return minor


def validate(row: Any, index: int) -> SpendRow | RowErrors:
    """`row` as a SpendRow, or every reason it is not one."""
    if not isinstance(row, Mapping):
        return RowErrors(index, ("row: must be an object",))
    errors: list[str] = []
    unknown = sorted(str(k) for k in row if k not in _KNOWN_FIELDS)
    if unknown:
        errors.append(f"unknown fields: {', '.join(unknown)}")
    for field in REQUIRED_FIELDS:
        if _blank(row.get(field)):
            errors.append(f"{field}: required")
    day = _day(row.get("date"), errors) if not _blank(row.get("date")) else None
    platform = row.get("platform")
    if not _blank(platform) and platform not in PLATFORMS:
        errors.append(f"platform: one of {', '.join(PLATFORMS)}")
    currency = row.get("currency")
    if not _blank(currency):
        try:
            exponent(currency)
        except MoneyError:
            errors.append("currency: must be an upper-case ISO 4217 code such as USD")
            currency = None
    else:
        currency = None
    ids = {field: _text(row, field, MAX_ID_LENGTH, errors) for field in ID_FIELDS}
    names = {field: _text(row, field, MAX_NAME_LENGTH, errors) for field in NAME_FIELDS}
    if ids["ad_id"] and not ids["adset_id"]:
        errors.append("adset_id: required when ad_id is given")
    spend_minor = _spend(row, currency, errors)
    counts = {field: _count(row, field, errors) for field in COUNT_FIELDS}
    if errors:
        return RowErrors(index, tuple(errors))
    assert day is not None and currency is not None
    return SpendRow(day=day, platform=platform, currency=currency, spend_minor=spend_minor,
                    **ids, **names, **counts)


def validate_all(rows: list[Any], first_index: int = 0) -> tuple[list[SpendRow], list[RowErrors]]:
    """Every row validated: the valid ones and the errors of the others, by index."""
    valid: list[SpendRow] = []
    invalid: list[RowErrors] = []
    for offset, row in enumerate(rows):
        result = validate(row, first_index + offset)
        (valid if isinstance(result, SpendRow) else invalid).append(result)
    return valid, invalid
