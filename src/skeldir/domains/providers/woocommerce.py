"""WooCommerce webhooks: the REST wc/v3 Order body of order.created and order.updated.

WooCommerce signs the raw body with the webhook's secret (base64 HMAC-SHA256, no timestamp)
after decoding HTML entities in the stored secret. There is no refund topic: a refund arrives
as an order.updated delivery whose `refunds[]` grew. A new webhook first sends an unsigned,
form-encoded ping that `is_ping` recognises, so the router can answer it 200.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from skeldir.domains.ingestion.event import AttributionHints, CommerceEvent, EntryKind, RevenueEntry
from skeldir.domains.ingestion.privacy import (
    UTM_KEYS,
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
    header_topic,
    header_value,
    load_json_object,
    named_values,
    optional_objects,
    optional_str,
    optional_timestamp,
    optional_utc_timestamp,
    required_amount,
    required_currency,
    required_id,
    platform_customer,
    stitch_refs,
)
from skeldir.domains.providers.signing import check_body_hmac

ORDER_TOPICS = frozenset({"order.created", "order.updated"})
# Paid or being fulfilled. A refunded order was paid too: its refunds[] net the sale to zero,
# which leaving the sale out would turn into negative revenue.
SALE_STATUSES = frozenset({"processing", "completed", "on-hold", "refunded"})
CANCELLED_STATUS = "cancelled"

_SIGNATURE_HEADER = "x-wc-webhook-signature"
_TOPIC_HEADER = "x-wc-webhook-topic"

_PING_BODY = re.compile(rb"webhook_id=[0-9]{1,20}")
_MAX_PING_BYTES = 64

_META_PREFIX = "_wc_order_attribution_"
_UTM_META = {f"{_META_PREFIX}{key}": key for key in UTM_KEYS}
_REFERRER_META = f"{_META_PREFIX}referrer"
_ENTRY_META = f"{_META_PREFIX}session_entry"
_SOURCE_TYPE_META = f"{_META_PREFIX}source_type"
# How each attribution meta value is kept; the user agent and the session details never are.
_META_VALUE_RULES: dict[str, Any] = {
    **{key: True for key in _UTM_META},
    _SOURCE_TYPE_META: True,
    _ENTRY_META: scrub_url,
    # The parser only needs the referring host; the rest of a referrer can name a person.
    _REFERRER_META: referring_domain,
}
# Sourcebuster's words for "no value" (WooCommerce drops "(none)" itself since 8.5).
_PLACEHOLDERS = frozenset({"(none)", "(direct)"})
# Order meta a shop sets at checkout (from the storefront's cookies) to link the order to a visit.
VISITOR_ID_META = "_skeldir_visitor_id"
CART_TOKEN_META = "_skeldir_cart_token"


def _attribution_meta(entries: Any) -> list[dict[str, Any]]:
    """The attribution entries of `meta_data`, in order, with scrubbed values and no ids."""
    if not isinstance(entries, list):
        return []
    return [
        project(entry, {"key": True, "value": _META_VALUE_RULES[entry["key"]]})
        for entry in entries
        if isinstance(entry, Mapping)
        and isinstance(entry.get("key"), str)
        and entry["key"] in _META_VALUE_RULES
    ]


ORDER_SPEC: Spec = {
    "id": True,
    "status": True,
    "currency": True,
    "total": True,
    "date_created_gmt": True,
    "date_created": True,
    "date_modified_gmt": True,
    "refunds": [{"id": True, "total": True}],
    "meta_data": _attribution_meta,
}


def is_ping(body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether a request is the unsigned ping a new WooCommerce webhook sends (answer 200).

    The ping is `webhook_id=<id>`, form-encoded, with no X-WC-Webhook-* headers; anything
    signed or naming a topic is a delivery and must be verified.
    """
    names = {name.lower() for name in headers}
    if _SIGNATURE_HEADER in names or _TOPIC_HEADER in names:
        return False
    return len(body) <= _MAX_PING_BYTES and _PING_BODY.fullmatch(body) is not None


# wp_specialchars_decode's table and its zero-padding rules, for ENT_QUOTES.
_ENTITIES = {
    b"&#039;": b"'",
    b"&#x27;": b"'",
    b"&quot;": b'"',
    b"&#034;": b'"',
    b"&#x22;": b'"',
    b"&lt;": b"<",
    b"&#060;": b"<",
    b"&gt;": b">",
    b"&#062;": b">",
    b"&amp;": b"&",
    b"&#038;": b"&",
    b"&#x26;": b"&",
}
_ENTITY = re.compile(b"|".join(re.escape(key) for key in sorted(_ENTITIES, key=len, reverse=True)))
_ENTITY_PADDING = [
    (re.compile(rb"&#0*39;"), b"&#039;"),
    (re.compile(rb"&#[xX]0*27;"), b"&#x27;"),
    (re.compile(rb"&#0*34;"), b"&#034;"),
    (re.compile(rb"&#[xX]0*22;"), b"&#x22;"),
    (re.compile(rb"&#0*60;"), b"&#060;"),
    (re.compile(rb"&#0*62;"), b"&#062;"),
    (re.compile(rb"&#0*38;"), b"&#038;"),
    (re.compile(rb"&#[xX]0*26;"), b"&#x26;"),
]


def wordpress_signing_key(secret: bytes) -> bytes:
    """The key WooCommerce signs with: `wp_specialchars_decode(secret, ENT_QUOTES)`.

    So the secret a merchant typed into WooCommerce works here as typed, `&amp;` and all.
    """
    if b"&" not in secret:
        return secret
    for pattern, canonical in _ENTITY_PADDING:
        secret = pattern.sub(canonical, secret)
    # One left-to-right pass, longest entity first, like PHP's strtr.
    return _ENTITY.sub(lambda match: _ENTITIES[match.group()], secret)


class WooCommerceProvider:
    name = "woocommerce"
    verify_may_block = False
    topic_header = _TOPIC_HEADER
    signature_headers = (_SIGNATURE_HEADER,)
    ping = staticmethod(is_ping)
    legacy_routes = {"order_completed": "order.updated"}

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[bytes],
        context: VerificationContext | None = None,
    ) -> None:
        signature = header_value(headers, _SIGNATURE_HEADER)
        check_body_hmac(body, signature, secrets, wordpress_signing_key)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        topic = header_topic(headers, (_TOPIC_HEADER,), ORDER_TOPICS)
        payload = load_json_object(body)
        event = _order_event(topic, payload)
        return Delivery(
            topic=topic,
            dedupe_key=_dedupe_key(body, topic, event),
            event=event,
            redacted_payload=project(payload, ORDER_SPEC),
            stitch=_stitch(payload),
        )


def _dedupe_key(body: bytes, topic: str, event: CommerceEvent) -> str:
    """What the delivery says, not who sent it when: the delivery id hashes only the webhook id
    and the current second (two updates of one order within a second share it, and a retry in
    a later second gets a new one), and date_modified_gmt has whole seconds too. A redelivery
    carries the same body; a real update changes it."""
    return f"{topic}:{event.external_order_id}:sha256:{hashlib.sha256(body).hexdigest()}"


def _order_event(topic: str, order: Mapping[str, Any]) -> CommerceEvent:
    order_id = required_id(order, "id", "order")
    status = optional_str(order, "status", "order")
    if not status:
        raise UnprocessableEvent("order.status is missing")
    currency = required_currency(order, "currency", "order")
    total = required_amount(order, "total", currency, "order")
    if total < 0:
        raise UnprocessableEvent("order.total is negative")
    ordered_at = optional_utc_timestamp(order, "date_created_gmt", "order")
    if ordered_at is None:
        # date_created is the shop's local time: usable only when it states its offset.
        ordered_at = optional_timestamp(order, "date_created", "order")
    if ordered_at is None:
        raise UnprocessableEvent("order.date_created_gmt is missing")
    updated_at = optional_utc_timestamp(order, "date_modified_gmt", "order")
    entries = []
    if status in SALE_STATUSES:
        entries.append(
            RevenueEntry(f"sale:{order_id}", EntryKind.SALE, total, currency, ordered_at)
        )
    # Refund items carry no date, and a cancellation none of its own: the order's last
    # modification is when they were seen.
    modified_at = updated_at or ordered_at
    for index, refund in enumerate(optional_objects(order, "refunds", "order")):
        where = f"order.refunds[{index}]"
        refund_id = required_id(refund, "id", where)
        amount = required_amount(refund, "total", currency, where)
        if amount > 0:
            raise UnprocessableEvent(f"{where}.total is positive")
        entries.append(
            RevenueEntry(f"refund:{refund_id}", EntryKind.REFUND, amount, currency, modified_at)
        )
    return CommerceEvent(
        provider=WooCommerceProvider.name,
        topic=topic,
        external_order_id=str(order_id),
        currency=currency,
        total_minor=total,
        ordered_at=ordered_at,
        updated_at=updated_at,
        entries=tuple(entries),
        hints=_hints(order),
        cancelled_at=modified_at if status == CANCELLED_STATUS else None,
        order_ids_per_store=True,
    )


def _hints(order: Mapping[str, Any]) -> AttributionHints:
    values: dict[str, str | None] = {}
    for index, entry in enumerate(optional_objects(order, "meta_data", "order")):
        key = entry.get("key")
        # The first entry of a key wins, as WooCommerce's get_meta() reads it.
        if isinstance(key, str) and key in _META_VALUE_RULES and key not in values:
            value = optional_str(entry, "value", f"order.meta_data[{index}]")
            values[key] = None if not value or value in _PLACEHOLDERS else value
    return attribution_hints(
        landing_url=values.get(_ENTRY_META),
        referrer=values.get(_REFERRER_META),
        source_name=values.get(_SOURCE_TYPE_META),
        fields={utm: values[meta] for meta, utm in _UTM_META.items() if values.get(meta)},
    )


def _stitch(order: Mapping[str, Any]) -> StitchRefs:
    # The first entry of a key wins, as WooCommerce's get_meta() reads it.
    meta = named_values(order.get("meta_data"), "key")
    billing = order.get("billing")
    return stitch_refs(
        visitor_id=(meta.get(VISITOR_ID_META),),
        cart_token=(meta.get(CART_TOKEN_META),),
        customer_ref=(billing.get("email") if isinstance(billing, Mapping) else None,
                      platform_customer(WooCommerceProvider.name, order.get("customer_id"))),
    )
