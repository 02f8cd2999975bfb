"""WooCommerce deliveries through the ledger on real PostgreSQL: two updates of one order
within one second (one delivery id, one date_modified_gmt) and a redelivery."""

from __future__ import annotations

import json

import pytest
from db_helpers import CHAIN_STALE

from skeldir.base.db import tenant_transaction
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.providers.woocommerce import WooCommerceProvider

pytestmark = pytest.mark.anyio

# WooCommerce builds the delivery id from the webhook id and the current second.
SAME_SECOND_DELIVERY_ID = "6f1d3c9a52e84b0c9d7e1f2a3b4c5d6e"
ORDER = {"id": 77, "status": "processing", "currency": "USD", "total": "10.50",
         "date_created_gmt": "2026-01-25T12:34:56", "date_modified_gmt": "2026-01-25T12:40:00",
         "refunds": [], "meta_data": []}


async def deliver(pool, tenant, order: dict, delivery_id: str):
    delivery = WooCommerceProvider().parse(
        json.dumps(order).encode(),
        {"x-wc-webhook-topic": "order.updated", "x-wc-webhook-delivery-id": delivery_id})
    return await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                        provider="woocommerce", delivery=delivery, chain_stale=CHAIN_STALE)


async def ledger(pool, tenant) -> tuple:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        order = await conn.fetchrow("SELECT total_minor, cancelled_at IS NOT NULL AS cancelled,"
                                    " version FROM orders")
        net = await conn.fetchval("SELECT sum(amount_minor) FROM revenue_entries")
    return order["total_minor"], order["cancelled"], net, order["version"]


async def test_two_updates_within_one_second_both_reach_the_ledger(runtime_pool, tenant_factory):
    tenant = tenant_factory()
    first = await deliver(runtime_pool, tenant, ORDER, SAME_SECOND_DELIVERY_ID)
    edited = {**ORDER, "total": "12.00"}
    second = await deliver(runtime_pool, tenant, edited, SAME_SECOND_DELIVERY_ID)
    assert (first.status, second.status) == ("accepted", "accepted")
    assert second.event_id != first.event_id and second.needs_chain
    assert (await ledger(runtime_pool, tenant))[:3] == (1200, False, 1200)

    cancelled = {**edited, "status": "cancelled"}
    assert (await deliver(runtime_pool, tenant, cancelled, SAME_SECOND_DELIVERY_ID)).needs_chain
    assert (await ledger(runtime_pool, tenant))[:3] == (1200, True, 0)


async def test_a_redelivery_changes_nothing(runtime_pool, tenant_factory):
    tenant = tenant_factory()
    first = await deliver(runtime_pool, tenant, ORDER, SAME_SECOND_DELIVERY_ID)
    before = await ledger(runtime_pool, tenant)
    # A retry comes in a later second, with a new delivery id and the same body.
    again = await deliver(runtime_pool, tenant, ORDER, "a-retry-one-second-later")
    assert (again.status, again.event_id, again.needs_chain) == ("duplicate", first.event_id, False)
    assert await ledger(runtime_pool, tenant) == before
