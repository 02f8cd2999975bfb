"""Touchpoints: validate a collector's batch item by item and store the valid ones once.

A touchpoint keeps its visitor id, time and attribution hints (allow-listed UTM fields and
click ids, the landing path, the referring host); tokens and customer references become
stitch keys. Nothing else the collector sends is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.ingestion.event import AttributionHints
from skeldir.domains.ingestion.hints import hints_document
from skeldir.domains.ingestion.privacy import TEXT_KEYS, attribution_hints, referring_domain
from skeldir.domains.ingestion.stitching import CART, CHECKOUT, CUSTOMER, stitch_key

MAX_BATCH = 1000
_MAX_ID = 128
_MAX_URL = 2048
_MAX_TOKEN = 256
# A collector's clock may run a little ahead; more than this is a bad timestamp.
_FUTURE_SKEW = timedelta(minutes=5)
_OPTIONAL_TEXT = ("referrer", "checkout_token", "cart_token", "customer_ref", *sorted(TEXT_KEYS))


KINDS = ("visit", "identify")


@dataclass(frozen=True, slots=True)
class Touchpoint:
    touchpoint_id: str
    visitor_id: str
    occurred_at: datetime
    hints: AttributionHints
    # An identify item only links the visitor to tokens; it is no step of the journey.
    is_visit: bool
    checkout_key: bytes | None
    cart_key: bytes | None
    customer_key: bytes | None


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    touchpoint_id: str | None
    errors: tuple[str, ...]


def validate(
    item: Any, index: int, tenant_key: bytes, now: datetime, *, ad_click_ids: bool = True
) -> Touchpoint | Rejected:
    """One item of a batch; every problem is reported, naming fields and never their values.
    Without `ad_click_ids` (no ad consent) the item's ad click ids are not kept."""
    if not isinstance(item, dict):
        return Rejected(index, None, ("the item is not an object",))
    errors: list[str] = []
    touchpoint_id = _identifier(item, "id", errors)
    visitor_id = _identifier(item, "visitor_id", errors)
    occurred_at = _timestamp(item, now, errors)
    kind = item.get("kind", "visit")
    if kind not in KINDS:
        errors.append("kind must be visit or identify")
    url = item.get("url")
    if (url is not None or kind == "visit") and (
        not isinstance(url, str) or not url or len(url) > _MAX_URL
    ):
        errors.append(f"url must be a string of 1-{_MAX_URL} characters")
    text = {}
    for field in _OPTIONAL_TEXT:
        value = item.get(field)
        if field == "referrer" and isinstance(value, str):
            # Only the referring host is kept: a long referrer is cut, not refused.
            value = value[:_MAX_URL]
        elif value is not None and (not isinstance(value, str) or len(value) > _MAX_TOKEN):
            errors.append(f"{field} must be a string of at most {_MAX_TOKEN} characters")
            continue
        if value:
            text[field] = value
    if kind == "identify" and not {"checkout_token", "cart_token", "customer_ref"} & set(text):
        errors.append("an identify item needs checkout_token, cart_token or customer_ref")
    if errors:
        return Rejected(index, touchpoint_id, tuple(errors))
    referrer = text.get("referrer")
    if referrer and url and referring_domain(referrer) == referring_domain(url):
        # A page of the shop's own site leading to another is navigation, not a source.
        referrer = None
    hints = attribution_hints(
        landing_url=url,
        referrer=referrer,
        fields={key: value for key, value in text.items() if key in TEXT_KEYS},
    )
    if not ad_click_ids:
        # Ad click ids identify a click on an ad: kept only with ad consent.
        hints = replace(hints, click_ids=())
    return Touchpoint(
        touchpoint_id=touchpoint_id,
        visitor_id=visitor_id,
        occurred_at=occurred_at,
        hints=hints,
        is_visit=kind == "visit",
        checkout_key=stitch_key(tenant_key, CHECKOUT, text.get("checkout_token")),
        cart_key=stitch_key(tenant_key, CART, text.get("cart_token")),
        customer_key=stitch_key(tenant_key, CUSTOMER, text.get("customer_ref")),
    )


def _identifier(item: dict, field: str, errors: list[str]) -> str | None:
    value = item.get(field)
    if (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_ID
        and value.isprintable()
        and value == value.strip()
    ):
        return value
    errors.append(f"{field} must be 1-{_MAX_ID} printable characters")
    return None


def _timestamp(item: dict, now: datetime, errors: list[str]) -> datetime | None:
    value = item.get("occurred_at")
    try:
        parsed = (
            datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
        )
        # Before the first UTC instant ("0001-01-01T00:00:00+01:00") overflows.
        parsed = parsed.astimezone(timezone.utc) if parsed and parsed.tzinfo else None
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None:
        errors.append("occurred_at must be an ISO 8601 time with an offset")
        return None
    if parsed > now + _FUTURE_SKEW:
        errors.append("occurred_at is in the future")
        return None
    return parsed


_INSERT_SQL = """
INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at, hints, is_visit,
                         checkout_key, cart_key, customer_key, channel, platform, rules_version)
SELECT $1, t.touchpoint_id, t.visitor_id, t.occurred_at, t.hints, t.is_visit, t.checkout_key,
       t.cart_key, t.customer_key, t.channel, t.platform, $12
FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::jsonb[], $6::boolean[], $7::bytea[],
            $8::bytea[], $9::bytea[], $10::text[], $11::text[])
     AS t(touchpoint_id, visitor_id, occurred_at, hints, is_visit, checkout_key, cart_key,
          customer_key, channel, platform)
ON CONFLICT (tenant_id, touchpoint_id) DO NOTHING
RETURNING touchpoint_id
"""


async def tenant_stitch_key(conn: asyncpg.Connection, box, tenant_id: uuid.UUID) -> bytes:
    ciphertext = await conn.fetchval(
        "SELECT stitch_key_ciphertext FROM tenants WHERE tenant_id = $1", tenant_id
    )
    if ciphertext is None:
        raise LookupError("the tenant has no stitch key")
    return box.decrypt(ciphertext, context=tenant_id.bytes)


_MARK_LATE_SQL = """
SELECT mark_orders_pending($1, array(
    SELECT o.order_id FROM orders o
    WHERE o.tenant_id = $1 AND o.has_snapshot AND o.ordered_at >= $2
      -- Each key by its own index: one OR across them read every order of the tenant on every
      -- post, which slowed collection as the shop's history grew.
      AND o.order_id IN (
          SELECT a.order_id FROM order_attributions a
          WHERE a.tenant_id = $1 AND a.visitor_id = ANY($3::text[])
          UNION ALL
          SELECT k.order_id FROM orders k WHERE k.tenant_id = $1 AND k.visitor_id = ANY($3::text[])
          UNION ALL
          SELECT k.order_id FROM orders k
          WHERE k.tenant_id = $1 AND k.checkout_key = ANY($4::bytea[])
          UNION ALL
          SELECT k.order_id FROM orders k WHERE k.tenant_id = $1 AND k.cart_key = ANY($5::bytea[])
          UNION ALL
          SELECT k.order_id FROM orders k
          WHERE k.tenant_id = $1 AND k.customer_key = ANY($6::bytea[]))))
"""


@dataclass(frozen=True, slots=True)
class Stored:
    new: int
    # Orders placed after a new touchpoint of theirs: their attribution is now stale.
    orders_marked: int


# The tenant's channel rules in force: (version, classify), classify giving a visit's (channel,
# platform). Attribution owns the rules; the caller passes them in, so ingestion needs nothing
# from attribution.
RulesInForce = Callable[[asyncpg.Connection, uuid.UUID], Awaitable[tuple[int, Callable]]]


async def store(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    touchpoints: list[Touchpoint],
    rules_in_force: RulesInForce,
) -> Stored:
    """Insert the touchpoints not stored before, each with its channel and ad platform under the
    rules in force,
    and mark pending the orders they reach late."""
    if not touchpoints:
        return Stored(0, 0)
    columns = list(
        zip(
            *(
                (
                    t.touchpoint_id,
                    t.visitor_id,
                    t.occurred_at,
                    hints_document(t.hints),
                    t.is_visit,
                    t.checkout_key,
                    t.cart_key,
                    t.customer_key,
                )
                for t in touchpoints
            ),
            strict=True,
        )
    )
    async with tenant_transaction(pool, tenant_id) as conn:
        rules_version, classify = await rules_in_force(conn, tenant_id)
        classes = [classify(t.hints) if t.is_visit else (None, None) for t in touchpoints]
        channels, platforms = (list(c) for c in zip(*classes, strict=True))
        inserted = {
            r["touchpoint_id"]
            for r in await conn.fetch(
                _INSERT_SQL,
                tenant_id,
                *(list(c) for c in columns),
                channels,
                platforms,
                rules_version,
            )
        }
        new = [t for t in touchpoints if t.touchpoint_id in inserted]
        if not new:
            return Stored(0, 0)
        marked = await conn.fetchval(
            _MARK_LATE_SQL,
            tenant_id,
            min(t.occurred_at for t in new),
            sorted({t.visitor_id for t in new}),
            [t.checkout_key for t in new if t.checkout_key],
            [t.cart_key for t in new if t.cart_key],
            [t.customer_key for t in new if t.customer_key],
        )
    return Stored(len(new), marked)
