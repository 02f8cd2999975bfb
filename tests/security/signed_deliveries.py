"""Deliveries signed as each provider signs them, with secrets easy to search for afterwards,
and every form a secret could take if it leaked (raw, base64 at any alignment, hex)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from skeldir.domains.providers.paypal import PayPalProvider, signed_message

# One signing secret per provider (PayPal's is the webhook id). Each is unlike anything else
# the system stores, so finding one anywhere means it leaked.
SECRETS = {
    "shopify": "shpss_leakcheck_shopify_7c1d9e",
    "stripe": "whsec_leakcheck_stripe_5b2a8f",
    "woocommerce": "leakcheck-woocommerce-3e4f6a9d",
    "paypal": "4LEAKCHECK0PAYPAL",
    "standard": "whsec_" + base64.b64encode(b"leakcheck-standard-key-32-bytes!").decode(),
}
PROVIDERS = tuple(SECRETS)

_PAYPAL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PAYPAL_CERT_URL = "https://api-m.paypal.com/v1/notifications/certs/CERT-leakcheck-0001"


def paypal_certificate() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leakcheck.test")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(_PAYPAL_KEY.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .sign(_PAYPAL_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )


def local_paypal_provider() -> PayPalProvider:
    """PayPal's verification with its certificate served from here, not fetched from PayPal."""
    pem = paypal_certificate()
    return PayPalProvider(fetch_certificate=lambda _url: pem)


def secret_key_bytes(provider: str) -> bytes:
    """The bytes the provider's HMAC is keyed with (Standard Webhooks decode theirs)."""
    secret = SECRETS[provider]
    if provider == "standard":
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sale(provider: str, order: int) -> dict:
    """A minimal sale the provider's parser accepts, for order number `order`."""
    now = int(time.time())
    return {
        "shopify": {"id": order, "total_price": "12.50", "currency": "USD",
                    "created_at": "2026-02-01T10:00:00Z"},
        "stripe": {"id": f"evt_leak{order}", "object": "event", "type": "payment_intent.succeeded",
                   "created": now, "data": {"object": {
                       "id": f"pi_leak{order}", "object": "payment_intent", "amount": 1250,
                       "amount_received": 1250, "currency": "usd", "created": now - 5,
                       "status": "succeeded", "metadata": {}}}},
        "woocommerce": {"id": order, "status": "processing", "currency": "USD", "total": "12.50",
                        "date_created_gmt": "2026-02-01T10:00:00",
                        "date_modified_gmt": "2026-02-01T10:00:01", "refunds": [],
                        "meta_data": []},
        "paypal": {"id": f"WH-LEAK{order}", "event_version": "1.0",
                   "create_time": "2026-02-01T10:00:05Z", "resource_type": "capture",
                   "resource_version": "2.0", "event_type": "PAYMENT.CAPTURE.COMPLETED",
                   "resource": {"id": f"CAPLEAK{order}", "status": "COMPLETED",
                                "amount": {"currency_code": "USD", "value": "12.50"},
                                "create_time": "2026-02-01T10:00:00Z",
                                "update_time": "2026-02-01T10:00:03Z"}},
        "standard": {"type": "order.created", "timestamp": "2026-02-01T10:00:01Z", "data": {
            "order_id": f"L-{order}", "currency": "EUR", "total": "12.50", "status": "paid",
            "created_at": "2026-02-01T10:00:00Z"}},
    }[provider]


def unprocessable(provider: str) -> dict:
    """A body that verifies but cannot be parsed: the edge keeps it as a dead event."""
    return {"id": "not an order", "type": "order.created",
            "event_type": "PAYMENT.CAPTURE.COMPLETED", "data": {}, "resource": {}}


def signed(provider: str, document: dict, secret: bytes | None = None) -> tuple[bytes, dict]:
    """The body and headers of a delivery signed with `secret` (the provider's own by default)."""
    body = json.dumps(document).encode()
    key = secret if secret is not None else secret_key_bytes(provider)
    delivery = uuid.uuid4().hex
    headers = {"content-type": "application/json"}
    if provider == "shopify":
        headers |= {"x-shopify-topic": "orders/create", "x-shopify-event-id": delivery,
                    "x-shopify-hmac-sha256": _b64_hmac(key, body)}
    elif provider == "stripe":
        stamp = int(time.time())
        signature = hmac.new(key, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        headers["stripe-signature"] = f"t={stamp},v1={signature}"
    elif provider == "woocommerce":
        headers |= {"x-wc-webhook-topic": "order.created", "x-wc-webhook-delivery-id": delivery,
                    "x-wc-webhook-resource": "order",
                    "x-wc-webhook-signature": _b64_hmac(key, body)}
    elif provider == "standard":
        stamp = str(int(time.time()))
        signature = _b64_hmac(key, f"{delivery}.{stamp}.".encode() + body)
        headers |= {"webhook-id": delivery, "webhook-timestamp": stamp,
                    "webhook-signature": f"v1,{signature}"}
    elif provider == "paypal":
        sent = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        transmission = str(uuid.uuid4())
        message = signed_message(transmission, sent, key.decode(), body)
        signature = _PAYPAL_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
        headers |= {"paypal-transmission-id": transmission, "paypal-transmission-time": sent,
                    "paypal-transmission-sig": base64.b64encode(signature).decode(),
                    "paypal-cert-url": PAYPAL_CERT_URL, "paypal-auth-algo": "SHA256withRSA"}
    return body, headers


def leak_forms(secret: bytes) -> set[bytes]:
    """Every way `secret` could show up in text or bytes: itself, hex in either case, and
    base64 (standard and URL-safe) at each of the three alignments it could have inside a
    longer encoded value, without the characters it would share with its neighbours."""
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + secret)
            first = -(-offset * 8 // 6)
            last = (offset + len(secret)) * 8 // 6
            forms.add(encoded[first:last])
    return forms


def needles(named: dict[str, str | bytes]) -> dict[bytes, str]:
    """Each leak form of each named secret, mapped back to the secret's name."""
    found = {}
    for name, value in named.items():
        raw = value.encode() if isinstance(value, str) else value
        for form in leak_forms(raw):
            found[form] = name
    return found


def leaked(haystack: str | bytes, needle_map: dict[bytes, str]) -> set[str]:
    data = haystack.encode() if isinstance(haystack, str) else haystack
    return {name for form, name in needle_map.items() if form in data}


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
