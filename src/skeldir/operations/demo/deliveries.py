"""Signing the demo's webhooks as each platform signs them, with the project's own primitives,
and the random signing secrets the demo's sources are connected with."""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from skeldir.domains.providers.signing import hmac_sha256
from skeldir.domains.providers.standard import SECRET_PREFIX, signing_key
from skeldir.domains.providers.woocommerce import wordpress_signing_key
from skeldir.operations.demo.payloads import Message

SHOP_DOMAIN = "demo-shop.myshopify.com"
WOOCOMMERCE_WEBHOOK_ID = "17"
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class SignedRequest:
    source: str
    topic: str
    body: bytes
    headers: dict[str, str]


def new_secrets() -> dict[str, str]:
    """A fresh signing secret per source, in the form each platform issues.

    PayPal has no shared secret: its source holds the PayPal webhook id instead.
    """
    return {
        "shopify": "shpss_" + secrets.token_hex(16),
        "stripe": "whsec_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32)),
        "woocommerce": secrets.token_urlsafe(36),
        "paypal": "".join(
            secrets.choice(string.ascii_uppercase + string.digits) for _ in range(17)
        ),
        "standard": SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def signed(message: Message, secret: str, now: int) -> SignedRequest:
    """`message` as its platform sends it at unix time `now` (Stripe and Standard Webhooks
    sign the time: a request must be sent within minutes of signing)."""
    body = json.dumps(message.document, separators=(",", ":")).encode()
    headers = _SIGNERS[message.source](message, body, secret.encode(), now)
    return SignedRequest(
        message.source, message.topic, body, {"Content-Type": "application/json", **headers}
    )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _shopify(message: Message, body: bytes, secret: bytes, now: int) -> dict[str, str]:
    return {
        "User-Agent": "Shopify-Captain-Hook",
        "X-Shopify-Topic": message.topic,
        "X-Shopify-Hmac-Sha256": _b64(hmac_sha256(secret, body)),
        "X-Shopify-Shop-Domain": SHOP_DOMAIN,
        "X-Shopify-API-Version": "2025-01",
        "X-Shopify-Webhook-Id": message.delivery_id,
        "X-Shopify-Event-Id": message.delivery_id,
        "X-Shopify-Triggered-At": message.sent_at.isoformat(),
    }


def _stripe(message: Message, body: bytes, secret: bytes, now: int) -> dict[str, str]:
    signature = hmac_sha256(secret, b"%d." % now + body).hex()
    return {
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": f"t={now},v1={signature}",
    }


def _woocommerce(message: Message, body: bytes, secret: bytes, now: int) -> dict[str, str]:
    resource, _, event = message.topic.partition(".")
    return {
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
        "X-WC-Webhook-Source": "https://demo-shop.example/",
        "X-WC-Webhook-Topic": message.topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-ID": WOOCOMMERCE_WEBHOOK_ID,
        "X-WC-Webhook-Delivery-ID": message.delivery_id,
        "X-WC-Webhook-Signature": _b64(hmac_sha256(wordpress_signing_key(secret), body)),
    }


def _standard(message: Message, body: bytes, secret: bytes, now: int) -> dict[str, str]:
    key = signing_key(secret)
    if key is None:
        raise ValueError("a Standard Webhooks secret is whsec_ and a base64 key")
    signed_content = f"{message.delivery_id}.{now}.".encode() + body
    return {
        "webhook-id": message.delivery_id,
        "webhook-timestamp": str(now),
        "webhook-signature": f"v1,{_b64(hmac_sha256(key, signed_content))}",
    }


_SIGNERS: dict[str, Callable[[Message, bytes, bytes, int], dict[str, str]]] = {
    "shopify": _shopify,
    "stripe": _stripe,
    "woocommerce": _woocommerce,
    "standard": _standard,
}
