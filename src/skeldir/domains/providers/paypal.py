"""PayPal webhooks: v2 captures and their refunds, v1 sales and their refunds.

PayPal signs `transmission id|transmission time|webhook id|crc32(body)` with SHA256withRSA and
serves the certificate at PAYPAL-CERT-URL. There is no shared secret: a source's secrets are
its PayPal webhook ids, and a signature is valid only for the webhook it was sent to.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from skeldir.domains.ingestion.event import AttributionHints, CommerceEvent, EntryKind, RevenueEntry
from skeldir.domains.ingestion.privacy import Spec, project, scrub_url
from skeldir.domains.ingestion.provider import (
    Delivery,
    SignatureError,
    UnprocessableEvent,
    VerificationContext,
)
from skeldir.domains.providers import paypal_certs
from skeldir.domains.providers.payload import (
    IdFormat,
    header_value,
    load_json_object,
    optional_object,
    optional_objects,
    optional_str,
    optional_text_id,
    optional_timestamp,
    required_amount,
    required_currency,
    required_object,
    required_text_id,
    rfc3339_timestamp,
)
from skeldir.domains.providers.paypal_certs import CertificateCache, CertificateFetcher
from skeldir.domains.providers.signing import (
    StaleTimestamp,
    base64_bytes,
    check_freshness,
    usable_secrets,
)

CAPTURE_COMPLETED = "PAYMENT.CAPTURE.COMPLETED"
CAPTURE_REFUNDED = "PAYMENT.CAPTURE.REFUNDED"
SALE_COMPLETED = "PAYMENT.SALE.COMPLETED"
SALE_REFUNDED = "PAYMENT.SALE.REFUNDED"

AUTH_ALGO = "SHA256withRSA"

_MAX_SIGNATURE_LENGTH = 1024
# Letters, digits, '-' and '_' (e.g. WH-2B34..., 56U00550J8319094C).
_PAYPAL_ID = IdFormat("a PayPal id", re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"))
_TRANSMISSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_EVENT_TYPE = re.compile(r"[A-Z0-9_.]{1,64}")
_CAPTURE_PATH = re.compile(r"/v2/payments/captures/([A-Za-z0-9_-]{1,128})/?")


def _up_links(links: Any) -> list[dict[str, str]]:
    """The links a refund's capture id can be read from, with scrubbed URLs."""
    if not isinstance(links, list):
        return []
    return [
        {"rel": "up", "href": href}
        for link in links
        if isinstance(link, Mapping) and link.get("rel") == "up"
        for href in [scrub_url(link.get("href"))]
        if href is not None and _capture_id_in(href) is not None
    ]


_RELATED: Spec = {"supplementary_data": {"related_ids": {"order_id": True}}}
_TIMES: Spec = {"create_time": True, "update_time": True}
_V2_AMOUNT: Spec = {"amount": {"value": True, "currency_code": True}}
_V1_AMOUNT: Spec = {"amount": {"total": True, "currency": True}}


@dataclass(frozen=True, slots=True)
class _Api:
    """Where a PayPal API version keeps amounts: v2 {value, currency_code}, v1 {total, currency}."""

    amount_key: str
    currency_key: str
    major_version: str


_V2 = _Api(amount_key="value", currency_key="currency_code", major_version="2")
_V1 = _Api(amount_key="total", currency_key="currency", major_version="1")


@dataclass(frozen=True, slots=True)
class _Kind:
    """What one supported event type carries and which of its fields are read."""

    api: _Api
    refund: bool
    resource_types: frozenset[str]
    resource_spec: Spec


_KINDS: dict[str, _Kind] = {
    CAPTURE_COMPLETED: _Kind(
        api=_V2,
        refund=False,
        resource_types=frozenset({"capture"}),
        resource_spec={"id": True, **_V2_AMOUNT, **_RELATED, **_TIMES},
    ),
    CAPTURE_REFUNDED: _Kind(
        api=_V2,
        refund=True,
        resource_types=frozenset({"refund"}),
        resource_spec={"id": True, **_V2_AMOUNT, **_RELATED, **_TIMES, "links": _up_links},
    ),
    SALE_COMPLETED: _Kind(
        api=_V1,
        refund=False,
        resource_types=frozenset({"sale"}),
        resource_spec={"id": True, **_V1_AMOUNT, **_RELATED, **_TIMES},
    ),
    # PayPal's own sample of this event says resource_type "sale" for a refund resource.
    SALE_REFUNDED: _Kind(
        api=_V1,
        refund=True,
        resource_types=frozenset({"sale", "refund"}),
        resource_spec={"id": True, "sale_id": True, **_V1_AMOUNT, **_RELATED, **_TIMES},
    ),
}
TOPICS = frozenset(_KINDS)


def spec_for(event_type: str) -> Spec:
    """The redacted shape of a supported event: the envelope and the resource fields read."""
    return {
        "id": True,
        "event_type": True,
        "create_time": True,
        "resource_type": True,
        "resource_version": True,
        "resource": _KINDS[event_type].resource_spec,
    }


def signed_message(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    """What PayPal signs: the CRC-32 of the raw body is written as an unsigned decimal."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()


class PayPalProvider:
    name = "paypal"
    verify_may_block = True
    topic_header = None
    signature_headers = ("paypal-transmission-sig",)
    ping = None
    legacy_routes = {"sale_completed": "PAYMENT.SALE.COMPLETED"}

    def __init__(self, fetch_certificate: CertificateFetcher | None = None) -> None:
        self._certificates = CertificateCache(fetch_certificate or paypal_certs.fetch_certificate)

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[bytes],
        context: VerificationContext | None = None,
    ) -> None:
        context = context or VerificationContext()
        transmission_id = header_value(headers, "paypal-transmission-id")
        if transmission_id is None or not _TRANSMISSION_ID.fullmatch(transmission_id):
            raise SignatureError("transmission id header is missing or malformed")
        transmission_time = header_value(headers, "paypal-transmission-time")
        sent_at = _transmission_timestamp(transmission_time)
        signature = _signature(header_value(headers, "paypal-transmission-sig"))
        if header_value(headers, "paypal-auth-algo") != AUTH_ALGO:
            raise SignatureError("auth algorithm header is not SHA256withRSA")
        cert_url = header_value(headers, "paypal-cert-url")
        webhook_ids = _webhook_ids(secrets)
        if not body:
            raise SignatureError("body is empty")
        try:
            check_freshness(sent_at, context)
        except StaleTimestamp:
            # Checked before the certificate fetch, so a replayed old delivery costs nothing;
            # nobody proved to be PayPal yet, so the reason stays the generic one.
            raise SignatureError("signed timestamp is outside the tolerance") from None
        # Every cheap check comes first: only a plausible delivery costs a fetch.
        public_key = self._certificates.public_key(cert_url, context.now)
        matched = False
        for webhook_id in webhook_ids:
            message = signed_message(transmission_id, transmission_time, webhook_id, body)
            matched |= _signed(public_key, signature, message)
        if not matched:
            raise SignatureError("signature does not match any webhook id")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        payload = load_json_object(body)
        event_id = required_text_id(payload, "id", "event", _PAYPAL_ID)
        event_type = optional_str(payload, "event_type", "event")
        if event_type is None:
            raise UnprocessableEvent("event.event_type is missing")
        if event_type not in TOPICS:
            if _EVENT_TYPE.fullmatch(event_type):
                raise UnprocessableEvent(f"unsupported event type {event_type!r}")
            raise UnprocessableEvent("event.event_type is not a supported event type")
        kind = _KINDS[event_type]
        resource = required_object(payload, "resource", "event")
        resource_type = optional_str(payload, "resource_type", "event")
        if resource_type is not None and resource_type not in kind.resource_types:
            raise UnprocessableEvent("event.resource_type does not fit event_type")
        version = optional_str(payload, "resource_version", "event")
        if version is not None and version.split(".")[0] != kind.api.major_version:
            raise UnprocessableEvent("event.resource_version is not supported for event_type")
        event_time = optional_timestamp(payload, "create_time", "event")
        return Delivery(
            topic=event_type,
            dedupe_key=f"event:{event_id}",
            event=_event(event_type, kind, resource, event_time),
            redacted_payload=project(payload, spec_for(event_type)),
        )


def _transmission_timestamp(value: str | None) -> float:
    sent_at = rfc3339_timestamp(value) if value is not None else None
    if sent_at is None:
        raise SignatureError("transmission time header is missing or not an RFC 3339 time")
    return sent_at.timestamp()


def _signature(value: str | None) -> bytes:
    if value is None:
        raise SignatureError("transmission signature header is missing")
    signature = base64_bytes(value) if len(value) <= _MAX_SIGNATURE_LENGTH else None
    if signature is None:
        raise SignatureError("transmission signature header is not base64")
    if not signature:
        raise SignatureError("transmission signature header is empty")
    return signature


def _webhook_ids(secrets: Sequence[bytes]) -> list[str]:
    webhook_ids = []
    for secret in usable_secrets(secrets):
        try:
            webhook_id = secret.decode("utf-8").strip()
        except UnicodeDecodeError:
            continue
        if webhook_id.isprintable() and "|" not in webhook_id:
            webhook_ids.append(webhook_id)
    if not webhook_ids:
        raise SignatureError("no usable webhook id is configured")
    return webhook_ids


def _signed(public_key: RSAPublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _event(
    event_type: str, kind: _Kind, resource: Mapping[str, Any], event_time: datetime | None
) -> CommerceEvent:
    resource_id = required_text_id(resource, "id", "resource", _PAYPAL_ID)
    amount_object = required_object(resource, "amount", "resource")
    currency = required_currency(amount_object, kind.api.currency_key, "resource.amount")
    amount = required_amount(amount_object, kind.api.amount_key, currency, "resource.amount")
    created_at = optional_timestamp(resource, "create_time", "resource") or event_time
    if created_at is None:
        raise UnprocessableEvent("resource.create_time is missing")
    order_id = _related_order_id(resource) or _own_order_id(event_type, resource, resource_id)
    if kind.refund:
        # v1 refunds state their amount as "-2.34" or "2.34"; a refund is negative either way.
        entry = RevenueEntry(
            f"refund:{resource_id}", EntryKind.REFUND, -abs(amount), currency, created_at
        )
    elif amount < 0:
        raise UnprocessableEvent(f"resource.amount.{kind.api.amount_key} is negative")
    else:
        entry = RevenueEntry(f"sale:{resource_id}", EntryKind.SALE, amount, currency, created_at)
    return CommerceEvent(
        provider=PayPalProvider.name,
        topic=event_type,
        external_order_id=order_id,
        currency=currency,
        total_minor=0 if kind.refund else amount,
        ordered_at=created_at,
        updated_at=optional_timestamp(resource, "update_time", "resource"),
        entries=(entry,),
        hints=AttributionHints(),
        has_order_snapshot=not kind.refund,
    )


def _related_order_id(resource: Mapping[str, Any]) -> str | None:
    supplementary = optional_object(resource, "supplementary_data", "resource") or {}
    where = "resource.supplementary_data"
    related = optional_object(supplementary, "related_ids", where) or {}
    return optional_text_id(related, "order_id", f"{where}.related_ids", _PAYPAL_ID)


def _own_order_id(event_type: str, resource: Mapping[str, Any], resource_id: str) -> str:
    """Without a PayPal order: the capture or sale itself, which a refund points back to."""
    if event_type == CAPTURE_REFUNDED:
        return _refunded_capture_id(resource)
    if event_type == SALE_REFUNDED:
        return required_text_id(resource, "sale_id", "resource", _PAYPAL_ID)
    return resource_id


def _refunded_capture_id(resource: Mapping[str, Any]) -> str:
    for index, link in enumerate(optional_objects(resource, "links", "resource")):
        if link.get("rel") != "up":
            continue
        href = optional_str(link, "href", f"resource.links[{index}]")
        capture_id = _capture_id_in(scrub_url(href))
        if capture_id is not None:
            return capture_id
    raise UnprocessableEvent("resource.links has no up link to a capture")


def _capture_id_in(href: str | None) -> str | None:
    if href is None:
        return None
    try:
        match = _CAPTURE_PATH.fullmatch(urlsplit(href).path)
    except ValueError:
        return None
    return match.group(1) if match else None
