"""Stripe webhooks: v1 snapshot events about PaymentIntents, Charges and Checkout Sessions.

Stripe signs `"{t}." + raw body` with the endpoint's signing secret (`whsec_...`, used whole)
and sends `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`; during a secret roll there are
several v1 values. One PaymentIntent is one order: its PaymentIntent, Charge and Checkout
Session events all name the sale `sale:<pi id>`, so whichever arrives first books it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from skeldir.domains.ingestion.event import AttributionHints, CommerceEvent, EntryKind, RevenueEntry
from skeldir.domains.ingestion.privacy import (
    Spec,
    attribution_fields,
    attribution_hints,
    project,
    referring_domain,
    scrub_url,
)
from skeldir.domains.ingestion.provider import (
    Delivery,
    SignatureError,
    StitchRefs,
    UnprocessableEvent,
    VerificationContext,
)
from skeldir.domains.providers.payload import (
    IdFormat,
    header_value,
    load_json_object,
    optional_bool,
    optional_object,
    optional_objects,
    optional_str,
    optional_text_id,
    optional_unix_time,
    required_currency,
    required_minor_amount,
    required_object,
    required_text_id,
    required_unix_time,
    platform_customer,
    stitch_refs,
    unix_seconds,
)
from skeldir.domains.providers.signing import (
    check_freshness,
    check_hmac_sha256,
    tolerance_seconds,
    usable_secrets,
)
from skeldir.domains.providers.stripe_amounts import stripe_amount, to_iso_minor

# Event type -> the kind of object it carries in data.object.
_OBJECT_KINDS = {
    "payment_intent.succeeded": "payment_intent",
    "charge.succeeded": "charge",
    "charge.refunded": "charge",
    "checkout.session.completed": "checkout.session",
}
TOPICS = frozenset(_OBJECT_KINDS)
THIN_EVENT_OBJECT = "v2.core.event"

_SIGNATURE_HEADER = "stripe-signature"
_MAX_SIGNATURE_HEADER_LENGTH = 4096
_V1_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_SAFE_TYPE = re.compile(r"[a-z0-9_.]{1,64}")


def _stripe_ids(*prefixes: str) -> IdFormat:
    """Stripe ids of one kind: a prefix, then letters, digits and '_' (255 at most)."""
    alternatives = "|".join(map(re.escape, prefixes))
    return IdFormat(
        f"a {'/'.join(prefixes)} id", re.compile(f"(?:{alternatives})[A-Za-z0-9_]*"), max_length=255
    )


_EVENT_ID = _stripe_ids("evt_")
_INTENT_ID = _stripe_ids("pi_")
_SESSION_ID = _stripe_ids("cs_")
_CHARGE_ID = _stripe_ids("ch_", "py_")
_REFUND_ID = _stripe_ids("re_", "pyr_")

# A refund that failed or was cancelled returned no money.
_COUNTED_REFUND_STATUSES = frozenset({"succeeded", "pending"})
_LANDING_KEYS = ("landing_url", "landing_page")
_REFERRER_KEY = "referrer"
# Metadata keys a merchant sets, when creating the payment, to link it to a visitor's journey.
VISITOR_ID_KEY = "skeldir_visitor_id"
CHECKOUT_TOKEN_KEY = "checkout_token"
CART_TOKEN_KEY = "cart_token"


def _attribution_metadata(metadata: Any) -> dict[str, Any] | None:
    """The metadata keys the parser reads, reduced as it reads them; merchants put emails and
    names in the others."""
    if not isinstance(metadata, Mapping):
        return None
    kept: dict[str, Any] = attribution_fields(metadata)
    for key in _LANDING_KEYS:
        kept[key] = scrub_url(metadata.get(key))
    kept[_REFERRER_KEY] = referring_domain(metadata.get(_REFERRER_KEY))
    return {key: value for key, value in kept.items() if value is not None}


def _event_spec(object_spec: Spec) -> Spec:
    data = {"object": object_spec, "previous_attributes": {"amount_refunded": True}}
    return {"id": True, "object": True, "type": True, "created": True, "data": data}


_REFUND: Spec = {
    "id": True,
    "object": True,
    "amount": True,
    "currency": True,
    "created": True,
    "status": True,
}
# What the redacted copy keeps, by the kind of object the event carries.
SPECS: dict[str, Spec] = {
    "payment_intent": _event_spec(
        {
            "id": True,
            "object": True,
            "amount": True,
            "amount_received": True,
            "currency": True,
            "created": True,
            "metadata": _attribution_metadata,
        }
    ),
    "charge": _event_spec(
        {
            "id": True,
            "object": True,
            "amount": True,
            "amount_captured": True,
            "amount_refunded": True,
            "captured": True,
            "paid": True,
            "status": True,
            "currency": True,
            "created": True,
            "payment_intent": True,
            "refunds": {"data": [_REFUND]},
            "metadata": _attribution_metadata,
        }
    ),
    "checkout.session": _event_spec(
        {
            "id": True,
            "object": True,
            "amount_total": True,
            "currency": True,
            "created": True,
            "payment_status": True,
            "payment_intent": True,
            "metadata": _attribution_metadata,
        }
    ),
}


class StripeProvider:
    name = "stripe"
    verify_may_block = False
    topic_header = None
    signature_headers = (_SIGNATURE_HEADER,)
    ping = None
    legacy_routes = {"payment_intent_succeeded": "payment_intent.succeeded"}

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[bytes],
        context: VerificationContext | None = None,
    ) -> None:
        context = context or VerificationContext()
        timestamp, received = _signature_header(header_value(headers, _SIGNATURE_HEADER))
        tolerance_seconds(context)
        if not body:
            raise SignatureError("body is empty")
        check_hmac_sha256(received, b"%d." % timestamp + body, usable_secrets(secrets))
        check_freshness(timestamp, context)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        payload = load_json_object(body)
        kind = payload.get("object")
        if kind == THIN_EVENT_OBJECT:
            raise UnprocessableEvent("thin events are not supported; send snapshot events")
        if kind != "event":
            raise UnprocessableEvent('event.object is not "event"')
        event_id = required_text_id(payload, "id", "event", _EVENT_ID)
        topic = payload.get("type")
        if not isinstance(topic, str):
            raise UnprocessableEvent("event.type is missing")
        if topic not in TOPICS:
            shown = f" {topic!r}" if _SAFE_TYPE.fullmatch(topic) else ""
            raise UnprocessableEvent(f"unsupported event type{shown}")
        created = required_unix_time(payload, "created", "event")
        data = required_object(payload, "data", "event")
        obj = required_object(data, "object", "event.data")
        return Delivery(
            topic=topic,
            dedupe_key=f"event:{event_id}",
            event=_commerce_event(topic, obj, data, created),
            redacted_payload=project(payload, SPECS[_OBJECT_KINDS[topic]]),
            stitch=_stitch(obj),
        )


def _signature_header(value: str | None) -> tuple[int, list[bytes]]:
    """(t, the well-formed v1 digests); v0 and unknown schemes are ignored, as Stripe says."""
    if value is None:
        raise SignatureError("Stripe-Signature header is missing")
    if len(value) > _MAX_SIGNATURE_HEADER_LENGTH or not value.isascii():
        raise SignatureError("Stripe-Signature header is malformed")
    items = [item.strip().partition("=") for item in value.split(",")]
    timestamps = [text for scheme, _, text in items if scheme == "t"]
    signatures = [text for scheme, _, text in items if scheme == "v1"]
    timestamp = unix_seconds(timestamps[0]) if len(timestamps) == 1 else None
    if timestamp is None:
        raise SignatureError("Stripe-Signature header has no single valid timestamp")
    if not signatures:
        raise SignatureError("Stripe-Signature header has no v1 signature")
    # A malformed v1 value cannot match; it is skipped rather than failing the others.
    digests = [bytes.fromhex(text) for text in signatures if _V1_SIGNATURE.fullmatch(text)]
    return timestamp, digests


def _commerce_event(
    topic: str, obj: Mapping[str, Any], data: Mapping[str, Any], created: datetime
) -> CommerceEvent:
    kind = _OBJECT_KINDS[topic]
    where = kind.replace(".", "_")
    if obj.get("object") != kind:
        raise UnprocessableEvent(f'{where}.object is not "{kind}"')
    currency = required_currency(obj, "currency", where, any_case=True)
    ordered_at = optional_unix_time(obj, "created", where) or created
    intent_id = optional_text_id(obj, "payment_intent", where, _INTENT_ID)
    if kind == "payment_intent":
        order_id = required_text_id(obj, "id", where, _INTENT_ID)
        total = stripe_amount(obj, "amount", currency, where)
        sold = stripe_amount(obj, "amount_received", currency, where)
    elif kind == "checkout.session":
        order_id = intent_id or required_text_id(obj, "id", where, _SESSION_ID)
        total = stripe_amount(obj, "amount_total", currency, where)
        sold = total if obj.get("payment_status") == "paid" else 0
    else:
        charge_id = required_text_id(obj, "id", where, _CHARGE_ID)
        order_id = intent_id or charge_id
        total = stripe_amount(obj, "amount", currency, where)
        sold = _captured_amount(obj, currency, where)
    if topic == "charge.refunded":
        entries, total = _refund_entries(obj, charge_id, data, currency, created), 0
    else:
        entries = _sale(order_id, sold, currency, ordered_at)
    return CommerceEvent(
        provider=StripeProvider.name,
        topic=topic,
        external_order_id=order_id,
        currency=currency,
        total_minor=total,
        ordered_at=ordered_at,
        updated_at=created,
        entries=entries,
        hints=_hints(obj, where),
        has_order_snapshot=topic != "charge.refunded",
    )


def _captured_amount(charge: Mapping[str, Any], currency: str, where: str) -> int:
    """What the charge took; nothing for a failed charge or a mere authorisation."""
    paid, captured = optional_bool(charge, "paid", where), optional_bool(charge, "captured", where)
    if paid is not True or captured is False or charge.get("status") != "succeeded":
        return 0
    key = "amount_captured" if charge.get("amount_captured") is not None else "amount"
    return stripe_amount(charge, key, currency, where)


def _refund_entries(
    charge: Mapping[str, Any],
    charge_id: str,
    data: Mapping[str, Any],
    currency: str,
    created: datetime,
) -> tuple[RevenueEntry, ...]:
    """One entry per refund object when the list is included (API versions before
    2022-11-15), otherwise one entry for the step amount_refunded took in this event.

    Each step comes from the event's own previous_attributes, so steps may arrive in any
    order; a list of refund ids repeats earlier refunds, a step does not.
    """
    refunds = optional_object(charge, "refunds", "charge") or {}
    if refunds.get("data"):
        listed = optional_objects(refunds, "data", "charge.refunds")
        return tuple(
            entry
            for index, refund in enumerate(listed)
            for entry in _listed_refund(refund, f"charge.refunds.data[{index}]")
        )
    where = "event.data.previous_attributes"
    previous = optional_object(data, "previous_attributes", "event.data") or {}
    if previous.get("amount_refunded") is None:
        raise UnprocessableEvent(f"{where}.amount_refunded is missing and no refund is listed")
    level = required_minor_amount(charge, "amount_refunded", "charge")
    step = level - required_minor_amount(previous, "amount_refunded", where)
    if step < 0:
        raise UnprocessableEvent("charge.amount_refunded is below its previous value")
    if step == 0:
        return ()
    minor = to_iso_minor(step, currency, "charge.amount_refunded")
    # Named by the level reached, so a redelivery books nothing twice and the steps of
    # several events sum to amount_refunded whatever order they arrive in.
    external_id = f"refund:{charge_id}:upto:{level}"
    return (RevenueEntry(external_id, EntryKind.REFUND, -minor, currency, created),)


def _listed_refund(refund: Mapping[str, Any], where: str) -> tuple[RevenueEntry, ...]:
    if refund.get("object") != "refund":
        raise UnprocessableEvent(f'{where}.object is not "refund"')
    status = optional_str(refund, "status", where)
    if status is not None and status not in _COUNTED_REFUND_STATUSES:
        return ()
    refund_id = required_text_id(refund, "id", where, _REFUND_ID)
    currency = required_currency(refund, "currency", where, any_case=True)
    minor = stripe_amount(refund, "amount", currency, where)
    occurred_at = required_unix_time(refund, "created", where)
    return (RevenueEntry(f"refund:{refund_id}", EntryKind.REFUND, -minor, currency, occurred_at),)


def _sale(order_id: str, minor: int, currency: str, at: datetime) -> tuple[RevenueEntry, ...]:
    if minor <= 0:
        return ()
    return (RevenueEntry(f"sale:{order_id}", EntryKind.SALE, minor, currency, at),)


def _hints(obj: Mapping[str, Any], where: str) -> AttributionHints:
    # Read from what the redacted copy keeps, so that both parse alike.
    metadata = _attribution_metadata(optional_object(obj, "metadata", where)) or {}
    landing = next(filter(None, map(metadata.get, _LANDING_KEYS)), None)
    return attribution_hints(
        landing_url=landing, referrer=metadata.get(_REFERRER_KEY), fields=metadata
    )


def _customer_id(obj: Mapping[str, Any]) -> str | None:
    # An id, or the Customer object itself where the sender expanded it.
    customer = obj.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return platform_customer(StripeProvider.name, customer)


def _stitch(obj: Mapping[str, Any]) -> StitchRefs:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    # A session's buyer is in customer_details; a charge's may be only in billing_details.
    details = [obj.get(key) for key in ("customer_details", "billing_details")]
    emails = [item.get("email") for item in details if isinstance(item, Mapping)]
    return stitch_refs(
        visitor_id=(metadata.get(VISITOR_ID_KEY),),
        checkout_token=(metadata.get(CHECKOUT_TOKEN_KEY),),
        cart_token=(metadata.get(CART_TOKEN_KEY),),
        customer_ref=(obj.get("receipt_email"), *emails, _customer_id(obj)),
    )
