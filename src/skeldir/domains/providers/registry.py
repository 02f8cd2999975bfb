"""Every provider the webhook edge knows, by name. Adding one is one `register` line here.

The tables below are views of the providers' own facts, kept for the edge, replay and re-parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from skeldir.domains.ingestion.provider import Provider
from skeldir.domains.providers.paypal import PayPalProvider
from skeldir.domains.providers.shopify import ShopifyProvider
from skeldir.domains.providers.standard import StandardWebhooksProvider
from skeldir.domains.providers.stripe import StripeProvider
from skeldir.domains.providers.woocommerce import WooCommerceProvider

PROVIDERS: dict[str, Provider] = {}
# Providers that name the topic in a header rather than in the body.
TOPIC_HEADERS: dict[str, str] = {}
# The headers that carry each provider's signature.
SIGNATURE_HEADERS: dict[str, tuple[str, ...]] = {}
# Unsigned requests a provider sends to test a new endpoint: answered 200, nothing stored.
PINGS: dict[str, Callable[[bytes, Mapping[str, str]], bool]] = {}
# Routes of the system Skeldir replaces: (provider, route name) -> the topic they carried.
LEGACY_TOPICS: dict[tuple[str, str], str] = {}
TABLES = (PROVIDERS, TOPIC_HEADERS, SIGNATURE_HEADERS, PINGS, LEGACY_TOPICS)


def register(provider: Provider) -> None:
    PROVIDERS[provider.name] = provider
    SIGNATURE_HEADERS[provider.name] = provider.signature_headers
    if provider.topic_header:
        TOPIC_HEADERS[provider.name] = provider.topic_header
    if provider.ping:
        PINGS[provider.name] = provider.ping
    for route, topic in provider.legacy_routes.items():
        LEGACY_TOPICS[(provider.name, route)] = topic


register(ShopifyProvider())
register(StripeProvider())
register(WooCommerceProvider())
register(PayPalProvider())
register(StandardWebhooksProvider())
