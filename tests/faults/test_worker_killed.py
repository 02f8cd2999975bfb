"""The worker is killed (SIGKILL) half way through a tenant's recompute, and another starts.

Each batch of a recompute commits its rows, its report change and the clearing of its pending
marks together, so the batches the dead worker committed stay, the one it was writing vanishes,
and the rest stay pending. The sweeper schedules the tenant again; the new worker attributes what
is left. In the end every order is attributed exactly once: nothing lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from attribution_checks import assert_attributed_exactly_once, progress, wait_until_attributed
from fault_system import FaultSystem, Tenant, order_body, poll
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_pool, tenant_transaction
from skeldir.domains.attribution.tenant_attribution import rules_in_force
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.providers.shopify import ShopifyProvider

pytestmark = pytest.mark.faults

ORDERS = 3000
LANDING_PAGES = (
    "https://shop.example/?utm_source=google&utm_medium=cpc",
    "https://shop.example/?utm_source=newsletter&utm_medium=email",
    "https://shop.example/?utm_source=facebook&utm_medium=social",
    "https://shop.example/products/lamp",
)


async def store_history(settings: Settings, tenant: Tenant, orders: int) -> None:
    """`orders` orders over four days, each after one to three visits of its visitor, stored
    through the same functions as the API and the collector (signatures are not the point)."""
    pool = await create_pool(settings, max_size=4)
    try:
        async with tenant_transaction(pool, tenant.tenant_id) as conn:
            stitch = await touchpoints.tenant_stitch_key(conn, secret_box(settings),
                                                         tenant.tenant_id)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        ordered_at = [now - timedelta(hours=n % 96 + 1) for n in range(orders)]
        visits = [
            touchpoints.validate(
                {"id": f"visit-{n}-{k}", "visitor_id": f"visitor-{n}",
                 "url": LANDING_PAGES[(n + k) % len(LANDING_PAGES)],
                 "occurred_at": (ordered_at[n] - timedelta(hours=k + 1)).isoformat()},
                0, stitch, now)
            for n in range(orders) for k in range(n % 3 + 1)
        ]
        await touchpoints.store(pool, tenant.tenant_id, visits, rules_in_force)
        provider = ShopifyProvider()
        limit = asyncio.Semaphore(4)

        async def one(n: int) -> None:
            body = order_body(800000 + n, total=f"{n % 250 + 1}.{n % 100:02d}",
                              created_at=ordered_at[n].isoformat(),
                              note_attributes=[{"name": "skeldir_visitor_id",
                                                "value": f"visitor-{n}"}])
            delivery = provider.parse(body, {"x-shopify-topic": "orders/create",
                                             "x-shopify-event-id": f"history-{n}"})
            async with limit:
                result = await ingest(pool, tenant_id=tenant.tenant_id,
                                      source_id=tenant.source_id, provider="shopify",
                                      delivery=delivery, chain_stale=timedelta(seconds=5),
                                      stitch_key=stitch)
            assert result.status == "accepted", result

        await asyncio.gather(*(one(n) for n in range(orders)))
    finally:
        await pool.close()


def recompute_half_done(system: FaultSystem, tenant: Tenant):
    """The run's state once a recompute is running with some batches committed and some not."""
    now = progress(system, tenant.tenant_id)
    running = system.count("recompute_jobs", tenant.tenant_id, "status = 'running'")
    if running and 0 < now["attributed"] and now["pending"] > 0:
        return {**now, "running jobs": running}
    return None


def test_a_worker_killed_mid_recompute_leaves_every_order_attributed_exactly_once(system):
    tenant = system.create_tenant("worker killed")
    # Stored while no worker runs, so the whole backlog is one long recompute to interrupt.
    system.stop_worker()
    asyncio.run(store_history(system.settings, tenant, ORDERS))
    assert progress(system, tenant.tenant_id)["pending"] == ORDERS

    system.start_worker()
    poll("a recompute half done", lambda: recompute_half_done(system, tenant), 60, system.logs,
         interval=0.02)
    system.kill_worker()
    after_kill = progress(system, tenant.tenant_id)
    assert after_kill["pending"] > 0 and after_kill["attributed"] < ORDERS, after_kill

    system.start_worker()
    wait_until_attributed(system, tenant.tenant_id, ORDERS, timeout=120)
    figures = assert_attributed_exactly_once(system, tenant.tenant_id)
    assert figures["orders"] == ORDERS and figures["channel_rows"] > 1, figures
    with system.owner() as conn:
        jobs = dict(conn.execute(
            "SELECT status, count(*) FROM recompute_jobs WHERE tenant_id = %s GROUP BY status",
            (tenant.tenant_id,)).fetchall())
    # The killed run never finishes its row; a later run did the rest.
    assert jobs.get("succeeded", 0) >= 1, jobs
