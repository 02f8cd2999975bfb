"""Report upkeep for one changed order: a tenant of 10,000 orders beside one of 1,000,000.

    .venv/bin/python bench/rebuild.py                          # 10,000 and 1,000,000 orders
    .venv/bin/python bench/rebuild.py --small 1000 --large 100000

Starts its own embedded PostgreSQL in a temporary directory. Each tenant's orders (a sale each,
a refund on every tenth, two touchpoints per order) are generated inside PostgreSQL as
bench/attribution.py generates them, then attributed once by the real recompute. Then, turn by
turn in each tenant, one order changes (an orders/updated delivery with a new total, through the
real ingest) and the chain's two steps run as the worker runs them: the recompute of the pending
order (its attribution rows and the channel report, in one transaction) and the refresh (the
daily revenue report). Their time must follow the change, not the tenant: the figure is the
median of several turns per tenant, and the ratio of the large tenant's to the small one's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

import attribution
import common
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_worker_pool, owner_connection
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.providers.shopify import ShopifyProvider
from skeldir.domains.reporting.refresh import refresh_tenant
from skeldir.operations import tenants

TURNS = 7
# The largest the flat cost may grow from the small tenant to the large one (noise included).
FLAT_RATIO = 2.0
CHAIN_STALE = timedelta(seconds=60)
SETTLED_TABLES = ("order_attributions", "channel_daily", "pending_orders", "report_dirty_orders")


@dataclass
class Shop:
    orders: int
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    recompute_ms: list[float] = field(default_factory=list)
    refresh_ms: list[float] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return statistics.median(a + b for a, b in zip(self.recompute_ms, self.refresh_ms))


async def prepare(pool: asyncpg.Pool, settings, orders: int) -> Shop:
    with owner_connection(settings) as conn:
        box = secret_box(settings)
        tenant = tenants.create_tenant(conn, box, f"shop of {orders:,}")
        source = tenants.add_source(
            conn,
            box,
            tenant_id=tenant.tenant_id,
            provider="shopify",
            secret="shpss_rebuild",
            public_url="http://bench",
        )
    print(f"generating {orders:,} orders and {2 * orders:,} touchpoints ...", flush=True)
    generated = await attribution.generate(pool, settings, tenant.tenant_id, orders, 2 * orders)
    seconds, attributed = await attribution.recompute_all(pool, tenant.tenant_id)
    # The refresh the worker runs after a recompute: the reports then count every entry, and a
    # turn's refresh has only its one changed order to count.
    await refresh_tenant(pool, tenant.tenant_id)
    settle(settings)
    print(f"  generated in {generated:.1f}s, attributed in {seconds:.1f}s", flush=True)
    return Shop(orders, tenant.tenant_id, source.source_id)


def settle(settings) -> None:
    """What autovacuum does within seconds of a bulk change: the plans for one order then see
    the tables' real sizes, and the pending marks just cleared leave no dead index entries."""
    with owner_connection(settings, autocommit=True) as conn:
        for table in SETTLED_TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")


async def change_one_order(pool: asyncpg.Pool, shop: Shop, turn: int) -> None:
    """An edit of a random order: a new total, a later updated_at (so it is the newest)."""
    order_id = random.randint(1, shop.orders)
    updated_at = attribution.ORDERED_AT + timedelta(minutes=turn + 1)
    body = json.dumps(
        {
            "id": order_id,
            "total_price": f"{10 + turn}.25",
            "currency": "USD",
            "created_at": attribution.ORDERED_AT.isoformat(),
            "updated_at": updated_at.isoformat(),
        }
    ).encode()
    delivery = ShopifyProvider().parse(body, {"x-shopify-topic": "orders/updated"})
    result = await ingest(
        pool,
        tenant_id=shop.tenant_id,
        source_id=shop.source_id,
        provider="shopify",
        delivery=delivery,
        chain_stale=CHAIN_STALE,
    )
    if result.status != "accepted":
        raise RuntimeError(f"the edit of order {order_id} was not accepted: {result}")


async def run_chain(pool: asyncpg.Pool, shop: Shop) -> tuple[float, float]:
    """Milliseconds of the recompute task's work and of the refresh task's work."""
    started = time.perf_counter()
    job_id = uuid.uuid4()
    await start_run(pool, shop.tenant_id, job_id)
    outcome = await recompute_pending(pool, shop.tenant_id, batch_size=5000)
    await finish_run(pool, shop.tenant_id, job_id, outcome)
    recomputed = time.perf_counter()
    refreshed = await refresh_tenant(pool, shop.tenant_id)
    done = time.perf_counter()
    if (outcome.orders, refreshed.orders) != (1, 1):
        raise RuntimeError(f"expected one order each, got {outcome} and {refreshed}")
    return (recomputed - started) * 1000, (done - recomputed) * 1000


async def measure(small: int, large: int) -> list[tuple[str, str, str, str]]:
    with common.embedded_database("skb-rebuild-") as settings:
        pool = await create_worker_pool(settings, max_size=4)
        shops = [await prepare(pool, settings, small), await prepare(pool, settings, large)]
        # Turn 0 warms caches and plans; turns alternate between the tenants so that whatever
        # else runs on the machine weighs on both alike.
        for turn in range(TURNS + 1):
            for shop in shops:
                await change_one_order(pool, shop, turn)
                recompute_ms, refresh_ms = await run_chain(pool, shop)
                if turn:
                    shop.recompute_ms.append(recompute_ms)
                    shop.refresh_ms.append(refresh_ms)
        await pool.close()

    rows = []
    for shop in shops:
        print(
            f"{shop.orders:>9,} orders: recompute "
            + " ".join(f"{ms:.1f}" for ms in shop.recompute_ms)
            + " ms; refresh "
            + " ".join(f"{ms:.1f}" for ms in shop.refresh_ms)
            + " ms"
        )
        rows.append(
            (
                f"one changed order, tenant of {shop.orders:,} orders",
                f"{shop.total_ms:.1f} ms (recompute "
                f"{statistics.median(shop.recompute_ms):.1f} + refresh "
                f"{statistics.median(shop.refresh_ms):.1f})",
                "-",
                "",
            )
        )
    ratio = shops[1].total_ms / shops[0].total_ms
    rows.append(
        (
            f"  ratio {shops[1].orders:,} / {shops[0].orders:,}",
            f"{ratio:.2f}x",
            f"<= {FLAT_RATIO:.0f}x (flat)",
            common.verdict(ratio <= FLAT_RATIO),
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000, help="orders of the small tenant")
    parser.add_argument("--large", type=int, default=1_000_000, help="orders of the large one")
    common.add_rows_argument(parser)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.small, args.large))
    common.finish(
        args, f"report upkeep for one changed order (median of {TURNS} turns per tenant)", rows
    )


if __name__ == "__main__":
    main()
