"""An order's attribution hints across snapshots, on real PostgreSQL: the Standard Webhooks
example sequence of docs/providers/standard.md (an update that carries no `attribution`)."""

from __future__ import annotations

import json
import uuid

import pytest
from db_helpers import CHAIN_STALE, ingest_shopify, model_allocations, order_body

from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.providers.standard import StandardWebhooksProvider

pytestmark = pytest.mark.anyio

CREATED = {
    "type": "order.created",
    "timestamp": "2026-01-25T12:34:57Z",
    "data": {
        "order_id": "A-1001", "currency": "EUR", "total": "84.90", "status": "paid",
        "created_at": "2026-01-25T12:34:56Z",
        "attribution": {
            "landing_url":
                "https://shop.example/pens?utm_source=google&utm_medium=cpc&gclid=Cj0KCQ",
            "referrer": "https://www.google.com/", "source_name": "web",
            "utm_campaign": "spring_sale",
        },
    },
}
UPDATED = {
    "type": "order.updated",
    "timestamp": "2026-01-27T15:00:06Z",
    "data": {
        "order_id": "A-1001", "currency": "EUR", "total": "84.90",
        "status": "partially_refunded", "created_at": "2026-01-25T12:34:56Z",
        "updated_at": "2026-01-27T15:00:05Z",
        "refunds": [{"id": "R-1", "amount": "10.00", "created_at": "2026-01-26T08:00:00Z"}],
    },
}


async def send_standard(pool, tenant, document: dict, message_id: str):
    delivery = StandardWebhooksProvider().parse(json.dumps(document).encode(),
                                                {"webhook-id": message_id})
    return await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                        provider="standard", delivery=delivery, chain_stale=CHAIN_STALE)


async def attribute(pool, tenant) -> None:
    await start_run(pool, tenant.tenant_id, job := uuid.uuid4())
    await finish_run(pool, tenant.tenant_id, job,
                     await recompute_pending(pool, tenant.tenant_id, batch_size=10))


async def test_an_update_without_attribution_keeps_the_earlier_hints(worker_pool, tenant_factory):
    tenant = tenant_factory()
    await send_standard(worker_pool, tenant, CREATED, "msg_created")
    assert (await send_standard(worker_pool, tenant, UPDATED, "msg_updated")).needs_chain
    await attribute(worker_pool, tenant)
    async with tenant_transaction(worker_pool, tenant.tenant_id) as conn:
        hints = await conn.fetchval("SELECT hints FROM orders WHERE external_order_id = 'A-1001'")
        allocations = await model_allocations(conn, "A-1001")
    assert (hints["utm_source"], hints["utm_medium"], hints["utm_campaign"]) == (
        "google", "cpc", "spring_sale")
    assert hints["click_ids"] == [["gclid", "Cj0KCQ"]]
    assert allocations["last_touch"]["channels"] == ["paid_search"]
    assert sum(allocations["last_touch"]["credits_minor"]) == 8490 - 1000


async def test_a_newer_snapshot_wins_for_what_it_says(runtime_pool, tenant_factory):
    tenant = tenant_factory()
    first = order_body(4401, landing_site="/?utm_source=google&utm_medium=cpc&gclid=g1",
                       updated_at="2026-01-25T12:34:56Z")
    newer = order_body(4401, landing_site="/?utm_source=newsletter&utm_medium=email&fbclid=f1",
                       updated_at="2026-01-25T13:00:00Z")
    await ingest_shopify(runtime_pool, tenant, first)
    await ingest_shopify(runtime_pool, tenant, newer, topic="orders/updated")
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        hints = await conn.fetchval("SELECT hints FROM orders WHERE external_order_id = '4401'")
    assert (hints["utm_source"], hints["utm_medium"]) == ("newsletter", "email")
    assert hints["click_ids"] == [["fbclid", "f1"], ["gclid", "g1"]]
