"""Shopify webhooks: the REST Order (orders/*) and Refund (refunds/create) bodies.

Shopify signs the raw body with the app's client secret (base64 HMAC-SHA256, no timestamp).
Order amounts are taken in shop money; `total_price_set` also gives the presentment money
the buyer saw. Refund transactions carry their own amount and currency, which may be the
presentment currency: their `amount_set.shop_money` is taken when present, and otherwise the
ledger converts by the order's own shop/presentment ratio (see docs/currencies.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from skeldir.domains.ingestion.event import AttributionHints, CommerceEvent, EntryKind, RevenueEntry
from skeldir.domains.ingestion.privacy import (
    Spec,
    attribution_hints,
    project,
    referring_domain,
    scrub_url,
)
from skeldir.domains.ingestion.provider import (
    Delivery,
    StitchRefs,
    UnprocessableEvent,
    VerificationContext,
)
from skeldir.domains.providers.payload import (
    PRINTABLE_ID,
    header_topic,
    header_value,
    load_json_object,
    named_values,
    optional_object,
    optional_objects,
    optional_str,
    optional_timestamp,
    required_amount,
    required_currency,
    required_id,
    platform_customer,
    stitch_refs,
)
from skeldir.domains.providers.signing import check_body_hmac

ORDER_TOPICS = frozenset({"orders/create", "orders/paid", "orders/updated", "orders/cancelled"})
REFUND_TOPIC = "refunds/create"

# Events deliveries send unprefixed names and may send both; the unprefixed one wins.
_HMAC_HEADERS = ("shopify-hmac-sha256", "x-shopify-hmac-sha256")
_TOPIC_HEADERS = ("shopify-topic", "x-shopify-topic")
_EVENT_ID_HEADERS = ("shopify-event-id", "x-shopify-event-id")
# The cart attribute a storefront sets to the visitor id; a leading "_" hides it at checkout.
_VISITOR_ATTRIBUTES = ("skeldir_visitor_id", "_skeldir_visitor_id")

_MONEY: Spec = {"amount": True, "currency_code": True}
_TRANSACTION: Spec = {
    "id": True,
    "kind": True,
    "status": True,
    "amount": True,
    "currency": True,
    "amount_set": {"shop_money": _MONEY, "presentment_money": _MONEY},
    "created_at": True,
}
_ORDER_REFUND: Spec = {"id": True, "created_at": True, "transactions": [_TRANSACTION]}
REFUND_SPEC: Spec = {**_ORDER_REFUND, "order_id": True, "processed_at": True}
ORDER_SPEC: Spec = {
    "id": True,
    "currency": True,
    "total_price": True,
    "total_price_set": {"shop_money": _MONEY, "presentment_money": _MONEY},
    "created_at": True,
    "processed_at": True,
    "updated_at": True,
    "cancelled_at": True,
    "refunds": [_ORDER_REFUND],
    "landing_site": scrub_url,
    # The parser only needs the referring host; the rest of a referrer can name a person.
    "referring_site": referring_domain,
    "source_name": True,
}


class ShopifyProvider:
    name = "shopify"
    verify_may_block = False
    # The header a stored event's topic goes back into when it is parsed again.
    topic_header = "x-shopify-topic"
    signature_headers = _HMAC_HEADERS
    ping = None
    legacy_routes = {"order_create": "orders/create"}

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[bytes],
        context: VerificationContext | None = None,
    ) -> None:
        check_body_hmac(body, header_value(headers, *_HMAC_HEADERS), secrets)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        topic = header_topic(headers, _TOPIC_HEADERS, ORDER_TOPICS | {REFUND_TOPIC})
        payload = load_json_object(body)
        if topic == REFUND_TOPIC:
            event, spec, stitch = _refund_event(payload), REFUND_SPEC, StitchRefs()
            content_key = f"{topic}:{required_id(payload, 'id', 'refund')}"
        else:
            event, spec, stitch = _order_event(topic, payload), ORDER_SPEC, _stitch(payload)
            content_key = f"{topic}:{event.external_order_id}"
            if topic == "orders/updated" and event.updated_at is not None:
                # Every edit of an order is its own orders/updated event.
                content_key += f"@{event.updated_at.isoformat()}"
        return Delivery(
            topic=topic,
            dedupe_key=_event_key(headers, topic) or content_key,
            event=event,
            redacted_payload=project(payload, spec),
            stitch=stitch,
        )


def _event_key(headers: Mapping[str, str], topic: str) -> str | None:
    event_id = header_value(headers, *_EVENT_ID_HEADERS)
    if event_id is None:
        return None
    if not PRINTABLE_ID.fits(event_id):
        raise UnprocessableEvent("event id header is malformed")
    # One merchant action shares its event id across topics (orders/paid and orders/updated),
    # so the id alone would swallow the second topic.
    return f"event:{event_id}:{topic}"


def _order_event(topic: str, order: Mapping[str, Any]) -> CommerceEvent:
    order_id = required_id(order, "id", "order")
    currency, total_minor, presentment_currency, presentment_total = _order_totals(order)
    ordered_at = _first_timestamp(order, ("created_at", "processed_at"), "order")
    sale = RevenueEntry(f"order:{order_id}", EntryKind.SALE, total_minor, currency, ordered_at)
    refunds = [
        entry
        for index, refund in enumerate(optional_objects(order, "refunds", "order"))
        for entry in _refund_entries(refund, f"order.refunds[{index}]")
    ]
    return CommerceEvent(
        provider=ShopifyProvider.name,
        topic=topic,
        external_order_id=str(order_id),
        currency=currency,
        total_minor=total_minor,
        ordered_at=ordered_at,
        updated_at=optional_timestamp(order, "updated_at", "order"),
        presentment_currency=presentment_currency,
        presentment_total_minor=presentment_total,
        entries=(sale, *refunds),
        hints=_hints(order),
        cancelled_at=optional_timestamp(order, "cancelled_at", "order"),
    )


def _order_totals(order: Mapping[str, Any]) -> tuple[str, int, str | None, int | None]:
    """(shop currency, shop total, presentment currency, presentment total)."""
    price_set = optional_object(order, "total_price_set", "order") or {}
    where = "order.total_price_set"
    shop_money = optional_object(price_set, "shop_money", where)
    presentment_money = optional_object(price_set, "presentment_money", where)
    currency = required_currency(order, "currency", "order") if "currency" in order else None
    total = None
    if currency is not None and "total_price" in order:
        total = required_amount(order, "total_price", currency, "order")
    if shop_money is not None:
        shop_currency = required_currency(shop_money, "currency_code", f"{where}.shop_money")
        if currency is not None and shop_currency != currency:
            raise UnprocessableEvent("order.currency disagrees with the shop money currency")
        currency = shop_currency
        total = required_amount(shop_money, "amount", currency, f"{where}.shop_money")
    if currency is None:
        raise UnprocessableEvent("order.currency is missing")
    if total is None:
        raise UnprocessableEvent("order.total_price is missing")
    # A negative total would book a negative sale; Shopify never sends one.
    if total < 0:
        raise UnprocessableEvent("order.total_price is negative")
    if presentment_money is None:
        return currency, total, None, None
    where = f"{where}.presentment_money"
    presentment_currency = required_currency(presentment_money, "currency_code", where)
    presentment_total = required_amount(presentment_money, "amount", presentment_currency, where)
    if presentment_total < 0:
        raise UnprocessableEvent(f"{where}.amount is negative")
    return currency, total, presentment_currency, presentment_total


def _refund_event(refund: Mapping[str, Any]) -> CommerceEvent:
    order_id = required_id(refund, "order_id", "refund")
    refunded_at = _first_timestamp(refund, ("created_at", "processed_at"), "refund")
    entries = _refund_entries(refund, "refund")
    transactions = optional_objects(refund, "transactions", "refund")
    if entries:
        currency = entries[0].currency
    elif transactions:
        currency = required_currency(transactions[0], "currency", "refund.transactions[0]")
    else:
        raise UnprocessableEvent("refund has no transaction to take a currency from")
    return CommerceEvent(
        provider=ShopifyProvider.name,
        topic=REFUND_TOPIC,
        external_order_id=str(order_id),
        currency=currency,
        total_minor=0,
        ordered_at=refunded_at,
        entries=tuple(entries),
        has_order_snapshot=False,
    )


def _refund_entries(refund: Mapping[str, Any], where: str) -> list[RevenueEntry]:
    """One negative entry per successful refund transaction of `refund`."""
    refund_id = required_id(refund, "id", where)
    refunded_at = optional_timestamp(refund, "created_at", where)
    entries = []
    for index, transaction in enumerate(optional_objects(refund, "transactions", where)):
        at = f"{where}.transactions[{index}]"
        kind = optional_str(transaction, "kind", at)
        status = optional_str(transaction, "status", at)
        if kind != "refund" or status != "success":
            continue
        transaction_id = required_id(transaction, "id", at)
        shop_money = optional_object(
            optional_object(transaction, "amount_set", at) or {}, "shop_money", f"{at}.amount_set"
        )
        if shop_money is not None:
            where = f"{at}.amount_set.shop_money"
            currency = required_currency(shop_money, "currency_code", where)
            amount = required_amount(shop_money, "amount", currency, where)
        else:
            currency = required_currency(transaction, "currency", at)
            amount = required_amount(transaction, "amount", currency, at)
        if amount < 0:
            raise UnprocessableEvent(f"{at}.amount is negative")
        occurred_at = optional_timestamp(transaction, "created_at", at) or refunded_at
        if occurred_at is None:
            raise UnprocessableEvent(f"{at}.created_at is missing")
        external_id = f"refund:{refund_id}:{transaction_id}"
        entries.append(RevenueEntry(external_id, EntryKind.REFUND, -amount, currency, occurred_at))
    return entries


def _first_timestamp(obj: Mapping[str, Any], keys: tuple[str, ...], where: str) -> datetime:
    for key in keys:
        value = optional_timestamp(obj, key, where)
        if value is not None:
            return value
    raise UnprocessableEvent(f"{where}.{keys[0]} is missing")


def _hints(order: Mapping[str, Any]) -> AttributionHints:
    return attribution_hints(
        landing_url=optional_str(order, "landing_site", "order"),
        referrer=optional_str(order, "referring_site", "order"),
        source_name=optional_str(order, "source_name", "order"),
    )


def _stitch(order: Mapping[str, Any]) -> StitchRefs:
    # Shopify keeps one value per attribute name; should a name repeat, the first counts.
    named = named_values(order.get("note_attributes"), "name")
    customer = order.get("customer")
    if not isinstance(customer, Mapping):
        customer = {}
    return stitch_refs(
        visitor_id=tuple(named.get(name) for name in _VISITOR_ATTRIBUTES),
        checkout_token=(order.get("checkout_token"),),
        cart_token=(order.get("cart_token"),),
        customer_ref=(order.get("email"), order.get("contact_email"), customer.get("email"),
                      platform_customer(ShopifyProvider.name, customer.get("id"))),
    )
