"""Visitors' journeys and their orders on real PostgreSQL, for tests of the learned models."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

from db_helpers import CHAIN_STALE, shopify_delivery
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_worker_pool, tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.attribution.tenant_attribution import rules_in_force
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.reporting.refresh import refresh_tenant

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SEARCH = "https://shop.example/?utm_source=google&utm_medium=cpc"
EMAIL = "https://shop.example/?utm_source=newsletter&utm_medium=email"
SOCIAL = "https://shop.example/?utm_source=facebook&utm_medium=social"


async def visit(pool, database, tenant, visitor: str, url: str, hours_ago: float, **extra) -> None:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        key = await touchpoints.tenant_stitch_key(conn, secret_box(database), tenant.tenant_id)
    item = {"id": uuid.uuid4().hex, "visitor_id": visitor, "url": url,
            "occurred_at": (NOW - timedelta(hours=hours_ago)).isoformat(), **extra}
    assert (await touchpoints.store(pool, tenant.tenant_id, [touchpoints.validate(item, 0, key, NOW)], rules_in_force)).new == 1


async def order(pool, database, tenant, order_id: int, visitor: str, total: str) -> None:
    body = json.dumps({"id": order_id, "currency": "USD", "total_price": total,
                       "created_at": (NOW - timedelta(minutes=5)).isoformat(),
                       "note_attributes": [{"name": "skeldir_visitor_id", "value": visitor}]}).encode()
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        key = await touchpoints.tenant_stitch_key(conn, secret_box(database), tenant.tenant_id)
    result = await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id, provider="shopify",
                          delivery=shopify_delivery(body), chain_stale=CHAIN_STALE, stitch_key=key)
    assert result.status == "accepted"


async def run_chain(pool, tenant) -> None:
    job = uuid.uuid4()
    await start_run(pool, tenant.tenant_id, job)
    await finish_run(pool, tenant.tenant_id, job, await recompute_pending(pool, tenant.tenant_id, batch_size=50))
    await refresh_tenant(pool, tenant.tenant_id)


async def converting_journeys(pool, database, tenant, count: int, first_order: int) -> None:
    """`count` visitors who came by search, then email, and bought; one who only browsed; then
    the chain, which stitches the orders to their visitors."""
    for n in range(count):
        visitor = f"v{first_order + n}"
        await visit(pool, database, tenant, visitor, SEARCH, 30)
        await visit(pool, database, tenant, visitor, EMAIL, 10)
        await order(pool, database, tenant, first_order + n, visitor, "50.00")
    await visit(pool, database, tenant, f"browser{first_order}", SOCIAL, 5)
    await run_chain(pool, tenant)


def add_converting_journeys(database, tenant, count: int, first_order: int) -> None:
    """The same from synchronous tests (which run their own event loop per call)."""

    async def run() -> None:
        pool = await create_worker_pool(database, max_size=2)
        try:
            await converting_journeys(pool, database, tenant, count, first_order)
        finally:
            await pool.close()

    asyncio.run(run())
