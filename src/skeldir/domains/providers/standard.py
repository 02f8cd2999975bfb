"""Standard Webhooks (standardwebhooks.com): any platform that signs and sends our order JSON.

The signature covers `"{webhook-id}.{webhook-timestamp}." + raw body` (HMAC-SHA256, base64,
tagged `v1`) with the key inside the `whsec_<base64>` secret. The body is the generic order
and refund shape of docs/providers/standard.md: it has no field for personal data, and
whatever a sender adds besides the documented fields is never read or kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from skeldir.domains.ingestion.event import AttributionHints, CommerceEvent, EntryKind, RevenueEntry
from skeldir.domains.ingestion.privacy import (
    CLICK_ID_KEYS,
    UTM_KEYS,
    Spec,
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
    optional_object,
    optional_objects,
    optional_str,
    optional_timestamp,
    required_amount,
    required_currency,
    required_minor_amount,
    required_object,
    required_text_id,
    required_timestamp,
    stitch_refs,
    unix_seconds,
)
from skeldir.domains.providers.signing import (
    SHA256_DIGEST_SIZE,
    base64_bytes,
    check_freshness,
    check_hmac_sha256,
    tolerance_seconds,
    usable_secrets,
)

ORDER_TYPES = frozenset({"order.created", "order.updated", "order.cancelled"})
REFUND_TYPE = "refund.created"
# The order has been paid: it books a sale. Refunds never undo the sale, they offset it.
PAID_STATUSES = frozenset({"paid", "fulfilled", "completed", "partially_refunded", "refunded"})
UNPAID_STATUSES = frozenset({"pending", "authorized", "failed", "cancelled"})

SECRET_PREFIX = "whsec_"
_MESSAGE_ID = IdFormat("printable ASCII without spaces", re.compile(r"[!-~]+"), max_length=256)
# A rotation sends two or three; more is not a sender we know.
_MAX_SIGNATURES = 16

_REFUND: Spec = {"id": True, "amount": True, "amount_minor": True, "created_at": True}
ATTRIBUTION_SPEC: Spec = {
    "landing_url": scrub_url,
    # Only the referring host is read; the rest of a referrer can name a person.
    "referrer": referring_domain,
    "source_name": True,
    **{key: True for key in (*UTM_KEYS, *CLICK_ID_KEYS)},
}
ORDER_SPEC: Spec = {
    "type": True,
    "timestamp": True,
    "data": {
        "order_id": True,
        "currency": True,
        "total": True,
        "total_minor": True,
        "status": True,
        "created_at": True,
        "updated_at": True,
        "cancelled_at": True,
        "refunds": [_REFUND],
        "attribution": ATTRIBUTION_SPEC,
    },
}
REFUND_SPEC: Spec = {
    "type": True,
    "timestamp": True,
    "data": {"order_id": True, "currency": True, "refund": _REFUND},
}


class StandardWebhooksProvider:
    name = "standard"
    verify_may_block = False
    topic_header = None
    signature_headers = ("webhook-signature",)
    ping = None
    legacy_routes: Mapping[str, str] = {}

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[bytes],
        context: VerificationContext | None = None,
    ) -> None:
        context = context or VerificationContext()
        message_id = _message_id(headers, SignatureError)
        timestamp = _timestamp(header_value(headers, "webhook-timestamp"))
        tolerance_seconds(context)
        received = _v1_signatures(header_value(headers, "webhook-signature"))
        keys = [signing_key(secret) for secret in usable_secrets(secrets)]
        usable_keys = [key for key in keys if key is not None]
        if not usable_keys:
            raise SignatureError("no signing secret is a whsec_ base64 key")
        signed = f"{message_id}.{timestamp}.".encode("ascii") + body
        check_hmac_sha256(received, signed, usable_keys)
        check_freshness(timestamp, context)

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        dedupe_key = f"webhook:{_message_id(headers, UnprocessableEvent)}"
        payload = load_json_object(body)
        event_type = payload.get("type")
        if not isinstance(event_type, str) or event_type not in {*ORDER_TYPES, REFUND_TYPE}:
            supported = ", ".join(sorted({*ORDER_TYPES, REFUND_TYPE}))
            raise UnprocessableEvent(f"payload.type is missing or not one of {supported}")
        occurred_at = required_timestamp(payload, "timestamp", "payload")
        data = required_object(payload, "data", "payload")
        if event_type == REFUND_TYPE:
            event, spec, stitch = _refund_event(data), REFUND_SPEC, StitchRefs()
        else:
            event, spec = _order_event(event_type, data, occurred_at), ORDER_SPEC
            stitch = _stitch(data)
        return Delivery(
            topic=event_type,
            dedupe_key=dedupe_key,
            event=event,
            redacted_payload=project(payload, spec),
            stitch=stitch,
        )


def signing_key(secret: bytes) -> bytes | None:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional); None if it has none.

    Unpadded base64 is accepted, as the reference libraries accept it.
    """
    try:
        text = secret.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    text = text.removeprefix(SECRET_PREFIX)
    if "=" not in text:
        text += "=" * (-len(text) % 4)
    return base64_bytes(text) or None


def _message_id(headers: Mapping[str, str], error: type[Exception]) -> str:
    value = header_value(headers, "webhook-id")
    if value is None:
        raise error("webhook-id header is missing")
    if not _MESSAGE_ID.fits(value):
        raise error("webhook-id header is malformed")
    return value


def _timestamp(value: str | None) -> int:
    if value is None:
        raise SignatureError("webhook-timestamp header is missing")
    timestamp = unix_seconds(value)
    if timestamp is None:
        raise SignatureError("webhook-timestamp header is not integer unix seconds")
    # Signed as the integer's text, as the reference libraries re-format it.
    return timestamp


def _v1_signatures(value: str | None) -> list[bytes]:
    """The digests of the well-formed `v1,<base64>` entries; other versions are not ours."""
    if value is None:
        raise SignatureError("webhook-signature header is missing")
    entries = value.split()
    if len(entries) > _MAX_SIGNATURES:
        raise SignatureError("webhook-signature header has too many signatures")
    digests = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        digest = base64_bytes(encoded) if version == "v1" else None
        if digest is not None and len(digest) == SHA256_DIGEST_SIZE:
            digests.append(digest)
    if not digests:
        raise SignatureError("webhook-signature header has no v1 signature")
    return digests


def _order_event(event_type: str, data: Mapping[str, Any], occurred_at: datetime) -> CommerceEvent:
    order_id = required_text_id(data, "order_id", "data")
    currency = required_currency(data, "currency", "data")
    total_minor = _minor_amount(data, "total", currency, "data")
    ordered_at = required_timestamp(data, "created_at", "data")
    status = data.get("status")
    if not isinstance(status, str) or status not in PAID_STATUSES | UNPAID_STATUSES:
        raise UnprocessableEvent("data.status is missing or not a documented status")
    entries = []
    if status in PAID_STATUSES:
        entries.append(
            RevenueEntry(f"sale:{order_id}", EntryKind.SALE, total_minor, currency, ordered_at)
        )
    refunds = optional_objects(data, "refunds", "data")
    for index, refund in enumerate(refunds):
        entries.append(_refund_entry(refund, order_id, currency, f"data.refunds[{index}]"))
    if len({entry.external_id for entry in entries}) != len(entries):
        raise UnprocessableEvent("data.refunds has two refunds with the same id")
    return CommerceEvent(
        provider=StandardWebhooksProvider.name,
        topic=event_type,
        external_order_id=order_id,
        currency=currency,
        total_minor=total_minor,
        ordered_at=ordered_at,
        # The event's own time orders snapshots when the sender gives no updated_at.
        updated_at=optional_timestamp(data, "updated_at", "data") or occurred_at,
        entries=tuple(entries),
        hints=_hints(optional_object(data, "attribution", "data") or {}),
        cancelled_at=_cancelled_at(event_type, status, data, occurred_at),
    )


def _cancelled_at(
    event_type: str, status: str, data: Mapping[str, Any], occurred_at: datetime
) -> datetime | None:
    """When the order was cancelled (it then nets to zero), or None while it stands."""
    cancelled_at = optional_timestamp(data, "cancelled_at", "data")
    if cancelled_at is None and (event_type == "order.cancelled" or status == "cancelled"):
        return occurred_at
    return cancelled_at


def _refund_event(data: Mapping[str, Any]) -> CommerceEvent:
    order_id = required_text_id(data, "order_id", "data")
    currency = required_currency(data, "currency", "data")
    refund = required_object(data, "refund", "data")
    entry = _refund_entry(refund, order_id, currency, "data.refund")
    return CommerceEvent(
        provider=StandardWebhooksProvider.name,
        topic=REFUND_TYPE,
        external_order_id=order_id,
        currency=currency,
        total_minor=0,
        ordered_at=entry.occurred_at,
        entries=(entry,),
        has_order_snapshot=False,
    )


def _refund_entry(
    refund: Mapping[str, Any], order_id: str, currency: str, where: str
) -> RevenueEntry:
    refund_id = required_text_id(refund, "id", where)
    amount = _minor_amount(refund, "amount", currency, where)
    refunded_at = required_timestamp(refund, "created_at", where)
    return RevenueEntry(
        refund_entry_id(order_id, refund_id), EntryKind.REFUND, -amount, currency, refunded_at
    )


def refund_entry_id(order_id: str, refund_id: str) -> str:
    """`refund:<order id>:<refund id>`, each part with ':' and '%' percent-encoded.

    Scoped by order because senders may number refunds per order; encoded so that no two
    (order, refund) pairs share an id.
    """
    return f"refund:{_escape(order_id)}:{_escape(refund_id)}"


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def _minor_amount(obj: Mapping[str, Any], key: str, currency: str, where: str) -> int:
    """A non-negative amount given either as a decimal string `key` or as integer `key`_minor."""
    minor_key = f"{key}_minor"
    given = [name for name in (key, minor_key) if obj.get(name) is not None]
    if len(given) != 1:
        raise UnprocessableEvent(f"{where} needs exactly one of {key} and {minor_key}")
    if given == [minor_key]:
        return required_minor_amount(obj, minor_key, where)
    if not isinstance(obj[key], str):
        raise UnprocessableEvent(f"{where}.{key} is not a decimal string")
    amount = required_amount(obj, key, currency, where)
    if amount < 0:
        raise UnprocessableEvent(f"{where}.{key} is negative")
    return amount


def _hints(attribution: Mapping[str, Any]) -> AttributionHints:
    where = "data.attribution"
    fields = {key: optional_str(attribution, key, where) for key in (*UTM_KEYS, *CLICK_ID_KEYS)}
    return attribution_hints(
        landing_url=optional_str(attribution, "landing_url", where),
        referrer=optional_str(attribution, "referrer", where),
        source_name=optional_str(attribution, "source_name", where),
        fields={key: value for key, value in fields.items() if value is not None},
    )


def _stitch(data: Mapping[str, Any]) -> StitchRefs:
    attribution = data.get("attribution")
    if not isinstance(attribution, Mapping):
        attribution = {}
    return stitch_refs(
        visitor_id=(attribution.get("visitor_id"),),
        checkout_token=(attribution.get("checkout_token"),),
        cart_token=(attribution.get("cart_token"),),
        customer_ref=(data.get("customer_ref"),),
    )
