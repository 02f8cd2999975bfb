"""Every provider the webhook edge knows, by name. Adding one is one line here."""

from __future__ import annotations

from skeldir.webhooks.provider import Provider
from skeldir.webhooks.shopify import ShopifyProvider

PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        ShopifyProvider(),
    )
}

# Routes of the system Skeldir replaces: (provider, route name) -> the topic they carried.
LEGACY_TOPICS: dict[tuple[str, str], str] = {
    ("shopify", "order_create"): "orders/create",
}
