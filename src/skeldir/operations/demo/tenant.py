"""The demo tenant: created with its keys, and one webhook source per platform."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.operations import tenants

SOURCE_LABELS = {
    "shopify": "Demo shop on Shopify",
    "stripe": "Demo shop's Stripe account",
    "woocommerce": "Demo shop on WooCommerce",
    # The demo cannot sign as PayPal does (see docs/demo.md): nothing is sent to this source.
    "paypal": "Demo shop's PayPal app (the demo sends PayPal orders via Standard Webhooks)",
    "standard": "Demo shop's own platform (Standard Webhooks), PayPal orders included",
}


@dataclass(frozen=True)
class DemoTenant:
    tenant_id: uuid.UUID
    api_key: str
    collect_key: str
    # provider -> the source's webhook URL
    webhook_urls: dict[str, str]


def create_demo_tenant(
    settings: Settings, name: str, signing_secrets: dict[str, str]
) -> DemoTenant:
    """The tenant and its sources, in one owner connection; `signing_secrets` by provider."""
    box = secret_box(settings)
    with owner_connection(settings) as conn:
        created = tenants.create_tenant(conn, box, name)
        urls = {
            provider: tenants.add_source(
                conn,
                box,
                tenant_id=created.tenant_id,
                provider=provider,
                secret=signing_secrets[provider],
                public_url=settings.public_url,
                label=SOURCE_LABELS[provider],
            ).url
            for provider in tenants.PROVIDERS
        }
    return DemoTenant(created.tenant_id, created.api_key, created.collect_key, urls)
