"""Reading a verified delivery: headers, JSON with exact numbers, and typed field access.

Every failure is an UnprocessableEvent whose reason names a field, never a value from the
payload, so reasons can be logged and stored without leaking what the sender put there.
Each `required_*` reader is its `optional_*` one that also rejects a missing or null field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from skeldir.base import money
from skeldir.domains.ingestion.provider import StitchRefs, UnprocessableEvent

_MAX_ID = 2**63 - 1
_MAX_TIMESTAMP_LENGTH = 64
_MAX_UNIX_TIME = 253402300799  # 9999-12-31T23:59:59Z
# Timestamps in text get the same range as unix seconds: an order dated year 1 would break
# every window computed back from it.
_EARLIEST = datetime.fromtimestamp(0, UTC)
_LATEST = datetime.fromtimestamp(_MAX_UNIX_TIME, UTC)
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)

T = TypeVar("T")


def header_value(headers: Mapping[str, str], *names: str) -> str | None:
    """The value of the first of `names` (lower-case) that is present and not blank."""
    for name in names:
        value = headers.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def header_topic(headers: Mapping[str, str], names: tuple[str, ...], topics: Container[str]) -> str:
    """The lower-cased topic in the first of the headers `names` present, one of `topics`."""
    topic = (header_value(headers, *names) or "").lower()
    if not topic:
        raise UnprocessableEvent("topic header is missing")
    if topic not in topics:
        raise UnprocessableEvent(f"unsupported topic {topic[:64]!r}")
    return topic


def load_json_object(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, with every non-integer number as an exact Decimal."""
    try:
        # orjson is the strict gate (UTF-8, no lone surrogates, no NaN or Infinity); the
        # stdlib then re-reads the same text so that 10.5 arrives as Decimal("10.5").
        if not isinstance(orjson.loads(body), dict):
            raise UnprocessableEvent("body is not a JSON object")
        return json.loads(body.decode("utf-8"), parse_float=Decimal)
    except orjson.JSONDecodeError:
        raise UnprocessableEvent("body is not valid JSON") from None
    except (ValueError, RecursionError):
        raise UnprocessableEvent("body has a number or nesting beyond supported limits") from None


def _present(value: T | None, key: str, where: str) -> T:
    if value is None:
        raise UnprocessableEvent(f"{where}.{key} is missing")
    return value


# --- objects and plain values ------------------------------------------------------------


def optional_object(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise UnprocessableEvent(f"{where}.{key} is not an object")
    return value


def required_object(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    return _present(optional_object(obj, key, where), key, where)


def optional_objects(obj: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    """A list of objects; a missing or null list is empty."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise UnprocessableEvent(f"{where}.{key} is not a list of objects")
    return value


def optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise UnprocessableEvent(f"{where}.{key} is not a string")
    return value


def optional_bool(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise UnprocessableEvent(f"{where}.{key} is not a boolean")
    return value


# --- ids ---------------------------------------------------------------------------------


def required_id(obj: Mapping[str, Any], key: str, where: str) -> int:
    """A positive integer id (senders that stringify ids send decimal digits)."""
    value = _present(obj.get(key), key, where)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_ID:
        raise UnprocessableEvent(f"{where}.{key} is not a positive integer id")
    return value


@dataclass(frozen=True, slots=True)
class IdFormat:
    """What a sender's text ids look like: printable, no outer white space, 1 to `max_length`
    characters, and matching `pattern` when there is one. `described` ends "is not ...".
    """

    described: str
    pattern: re.Pattern[str] | None = None
    max_length: int = 128

    def fits(self, value: str) -> bool:
        return (
            0 < len(value) <= self.max_length
            and value.isprintable()
            and value == value.strip()
            and (self.pattern is None or self.pattern.fullmatch(value) is not None)
        )


PRINTABLE_ID = IdFormat("a string of 1-128 printable characters")


def optional_text_id(
    obj: Mapping[str, Any], key: str, where: str, id_format: IdFormat = PRINTABLE_ID
) -> str | None:
    value = obj.get(key)
    if value is not None and not (isinstance(value, str) and id_format.fits(value)):
        raise UnprocessableEvent(f"{where}.{key} is not {id_format.described}")
    return value


def required_text_id(
    obj: Mapping[str, Any], key: str, where: str, id_format: IdFormat = PRINTABLE_ID
) -> str:
    return _present(optional_text_id(obj, key, where, id_format), key, where)


# --- money -------------------------------------------------------------------------------


def required_currency(
    obj: Mapping[str, Any], key: str, where: str, *, any_case: bool = False
) -> str:
    """An upper-case ISO 4217 code; `any_case` also takes "usd", as Stripe writes codes."""
    value = _present(obj.get(key), key, where)
    if any_case and isinstance(value, str) and value.isascii():
        value = value.upper()
    try:
        money.exponent(value)
    except money.MoneyError:
        raise UnprocessableEvent(f"{where}.{key} is not a known currency code") from None
    return value


def required_amount(obj: Mapping[str, Any], key: str, currency: str, where: str) -> int:
    """The decimal amount at `key` in exact minor units of `currency` (it may be negative)."""
    value = _present(obj.get(key), key, where)
    try:
        return money.to_minor(value, currency)
    except money.MoneyError:
        raise UnprocessableEvent(f"{where}.{key} is not an exact amount in range") from None


def required_minor_amount(obj: Mapping[str, Any], key: str, where: str) -> int:
    """A non-negative JSON integer amount, already in minor units, that fits a bigint."""
    value = _present(obj.get(key), key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnprocessableEvent(f"{where}.{key} is not an integer")
    if value < 0:
        raise UnprocessableEvent(f"{where}.{key} is negative")
    if value > money.BIGINT_MAX:
        raise UnprocessableEvent(f"{where}.{key} is out of range")
    return value


# --- time --------------------------------------------------------------------------------


def optional_timestamp(obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
    """An ISO 8601 timestamp with an offset, as UTC."""
    return _iso_timestamp(obj, key, where, naive_means_utc=False)


def required_timestamp(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    return _present(optional_timestamp(obj, key, where), key, where)


def optional_utc_timestamp(obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
    """An ISO 8601 timestamp that is UTC when it has no offset (WooCommerce's `*_gmt`)."""
    return _iso_timestamp(obj, key, where, naive_means_utc=True)


def _iso_timestamp(
    obj: Mapping[str, Any], key: str, where: str, *, naive_means_utc: bool
) -> datetime | None:
    value = optional_str(obj, key, where)
    if value is None:
        return None
    try:
        if len(value) > _MAX_TIMESTAMP_LENGTH:
            raise ValueError
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UnprocessableEvent(f"{where}.{key} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        if not naive_means_utc:
            raise UnprocessableEvent(f"{where}.{key} has no UTC offset")
        parsed = parsed.replace(tzinfo=UTC)
    try:
        moment = parsed.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before the first UTC instant
        moment = None
    if moment is None or not _EARLIEST <= moment <= _LATEST:
        raise UnprocessableEvent(f"{where}.{key} is not a time from 1970 to 9999")
    return moment


def optional_unix_time(obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
    """A JSON integer of unix seconds (Stripe's `created`), as UTC."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_UNIX_TIME:
        raise UnprocessableEvent(f"{where}.{key} is not a unix timestamp")
    return datetime.fromtimestamp(value, UTC)


def required_unix_time(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    return _present(optional_unix_time(obj, key, where), key, where)


def unix_seconds(text: str) -> int | None:
    """Unix seconds written as 1-12 ASCII digits (a signed header's timestamp), else None."""
    return int(text) if _UNIX_SECONDS.fullmatch(text) else None


def rfc3339_timestamp(text: str) -> datetime | None:
    """A strict RFC 3339 date-time with an offset (a signed header's time) as UTC, else None."""
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


# The longest stitch reference of each kind that is read; a longer value is not one.
MAX_VISITOR_ID = 128
MAX_TOKEN = 256
MAX_CUSTOMER_REF = 320  # the longest email address


def stitch_refs(
    *,
    visitor_id: tuple[Any, ...] = (),
    checkout_token: tuple[Any, ...] = (),
    cart_token: tuple[Any, ...] = (),
    customer_ref: tuple[Any, ...] = (),
) -> StitchRefs:
    """Each reference as the first of its candidates that is printable text within its bound,
    stripped. Anything else counts as absent, never as an error: a bad reference must not
    cost a sale its booking."""
    return StitchRefs(
        visitor_id=_stitch_text(visitor_id, MAX_VISITOR_ID),
        checkout_token=_stitch_text(checkout_token, MAX_TOKEN),
        cart_token=_stitch_text(cart_token, MAX_TOKEN),
        customer_ref=_stitch_text(customer_ref, MAX_CUSTOMER_REF),
    )


def platform_customer(provider: str, value: Any) -> str | None:
    """A platform's own customer id as a customer reference, `<provider>:customer:<id>`, or None.

    The reference of last resort: an order's email comes first, as journeys stitch on it (see
    docs/customers.md), so an account id names the customer only of an order without an
    email. The prefix keeps one platform's ids from meeting another's, or a shop's own
    reference. A guest (no id, Shopify's null, WooCommerce's 0) has none.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value <= _MAX_ID:
        return f"{provider}:customer:{value}"
    if isinstance(value, str) and value.strip() and value.strip() != "0":
        return f"{provider}:customer:{value.strip()}"
    return None


def named_values(items: Any, name_key: str) -> dict[str, Any]:
    """A list of `{name_key: name, "value": value}` objects as a dict, the first of a repeated
    name winning; no list, or an item without a string name, reads as nothing (stitching
    hints are best effort)."""
    named: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get(name_key), str):
            named.setdefault(item[name_key], item.get("value"))
    return named


def _stitch_text(candidates: tuple[Any, ...], max_length: int) -> str | None:
    for value in candidates:
        if isinstance(value, str):
            value = value.strip()
            if 0 < len(value) <= max_length and value.isprintable():
                return value
    return None
