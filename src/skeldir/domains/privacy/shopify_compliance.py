"""Shopify's mandatory compliance webhooks, read into a privacy request.

`customers/redact` (`customer.id`, `customer.email`, `orders_to_redact`) is an erasure,
`customers/data_request` (`customer`, `orders_requested`) a data request, `shop/redact` the
erasure of everything that came through the shop's source. They arrive through the source URL
and are verified like every Shopify webhook before this reads them. Only what names the
customer is read; the email is hashed by the caller before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from skeldir.domains.privacy.subjects import OrderRef

TOPICS = {
    "customers/redact": "erasure",
    "customers/data_request": "data_request",
    "shop/redact": "shop_redact",
}
_TOPIC_HEADERS = ("shopify-topic", "x-shopify-topic")
_EVENT_ID_HEADERS = ("shopify-event-id", "x-shopify-event-id", "x-shopify-webhook-id")


class ComplianceError(ValueError):
    """A compliance webhook whose body cannot be read."""


@dataclass(frozen=True)
class ComplianceRequest:
    kind: str
    customer_refs: tuple[str, ...]
    orders: tuple[OrderRef, ...]
    dedupe_key: str


def compliance_topic(headers: Mapping[str, str]) -> str | None:
    """The topic when it is one of the compliance topics, else None."""
    for name in _TOPIC_HEADERS:
        if headers.get(name) in TOPICS:
            return headers[name]
    return None


def read(topic: str, body: bytes, headers: Mapping[str, str]) -> ComplianceRequest:
    try:
        payload = json.loads(body)
    except ValueError:
        raise ComplianceError("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise ComplianceError("the body is not a JSON object")
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    refs = tuple(
        str(value)
        for value in (customer.get("email"), customer.get("id"))
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip()
    )
    listed = payload.get("orders_to_redact") or payload.get("orders_requested") or []
    if not isinstance(listed, list):
        raise ComplianceError("the orders listed are not a list")
    orders = tuple(
        OrderRef("shopify", str(order_id))
        for order_id in listed
        if isinstance(order_id, (str, int)) and not isinstance(order_id, bool)
    )
    kind = TOPICS[topic]
    if kind != "shop_redact" and not refs and not orders:
        raise ComplianceError("the request names no customer and no order")
    event_id = next((headers[h] for h in _EVENT_ID_HEADERS if headers.get(h)), None)
    # Shopify retries a delivery with the same event id; without one, the same body is the
    # same request.
    dedupe = event_id[:200] if event_id else hashlib.sha256(body).hexdigest()
    return ComplianceRequest(kind, refs, orders, f"shopify:{topic}:{dedupe}")
