"""Every provider the webhook edge knows, by name. Adding one is one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from skeldir.domains.ingestion.provider import Provider
from skeldir.domains.providers import woocommerce
from skeldir.domains.providers.paypal import PayPalProvider
from skeldir.domains.providers.shopify import ShopifyProvider
from skeldir.domains.providers.standard import StandardWebhooksProvider
from skeldir.domains.providers.stripe import StripeProvider

PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        ShopifyProvider(),
        StripeProvider(),
        woocommerce.WooCommerceProvider(),
        PayPalProvider(),
        StandardWebhooksProvider(),
    )
}

# Providers that name the topic in a header rather than in the body.
TOPIC_HEADERS: dict[str, str] = {
    "shopify": "x-shopify-topic",
    "woocommerce": "x-wc-webhook-topic",
}

# The headers that carry each provider's signature. A request to a source URL that names no
# source is checked, against decoy secrets, by the provider whose signature it carries: it then
# costs what a bad signature at a real source of that provider costs.
SIGNATURE_HEADERS: dict[str, tuple[str, ...]] = {
    "shopify": ("shopify-hmac-sha256", "x-shopify-hmac-sha256"),
    "stripe": ("stripe-signature",),
    "woocommerce": ("x-wc-webhook-signature",),
    "paypal": ("paypal-transmission-sig",),
    "standard": ("webhook-signature",),
}

# Unsigned requests a provider sends to test a new endpoint: answered 200, nothing stored.
PINGS: dict[str, Callable[[bytes, Mapping[str, str]], bool]] = {
    "woocommerce": woocommerce.is_ping,
}

# Routes of the system Skeldir replaces: (provider, route name) -> the topic they carried.
LEGACY_TOPICS: dict[tuple[str, str], str] = {
    ("shopify", "order_create"): "orders/create",
    ("stripe", "payment_intent_succeeded"): "payment_intent.succeeded",
    ("paypal", "sale_completed"): "PAYMENT.SALE.COMPLETED",
    ("woocommerce", "order_completed"): "order.updated",
}
