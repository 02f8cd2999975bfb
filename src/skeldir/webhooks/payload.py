"""Reading a verified delivery: headers, JSON with exact numbers, and typed field access.

Every failure is an UnprocessableEvent whose reason names a field, never a value from the
payload, so reasons can be logged and stored without leaking what the sender put there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

from skeldir import money
from skeldir.webhooks.provider import UnprocessableEvent

_MAX_ID = 2**63 - 1
_MAX_TIMESTAMP_LENGTH = 64


def header_value(headers: Mapping[str, str], *names: str) -> str | None:
    """The value of the first of `names` (lower-case) that is present and not blank."""
    for name in names:
        value = headers.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


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


def optional_object(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise UnprocessableEvent(f"{where}.{key} is not an object")
    return value


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


def required_id(obj: Mapping[str, Any], key: str, where: str) -> int:
    """A positive integer id (senders that stringify ids send decimal digits)."""
    value = obj.get(key)
    if value is None:
        raise UnprocessableEvent(f"{where}.{key} is missing")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_ID:
        raise UnprocessableEvent(f"{where}.{key} is not a positive integer id")
    return value


def required_currency(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        raise UnprocessableEvent(f"{where}.{key} is missing")
    try:
        money.exponent(value)
    except money.MoneyError:
        raise UnprocessableEvent(f"{where}.{key} is not a known currency code") from None
    return value


def required_amount(obj: Mapping[str, Any], key: str, currency: str, where: str) -> int:
    """The amount at `key` in exact minor units of `currency`."""
    value = obj.get(key)
    if value is None:
        raise UnprocessableEvent(f"{where}.{key} is missing")
    try:
        return money.to_minor(value, currency)
    except money.MoneyError:
        raise UnprocessableEvent(f"{where}.{key} is not an exact amount in range") from None


def optional_timestamp(obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
    """An ISO 8601 timestamp with an offset, as UTC."""
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
        raise UnprocessableEvent(f"{where}.{key} has no UTC offset")
    return parsed.astimezone(timezone.utc)
