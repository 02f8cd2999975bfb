"""Attribution throughput: recompute a tenant with many orders and touchpoints (generated),
printing orders/s end to end (database reads and writes included) and per model, and memory.

    .venv/bin/python bench/attribution.py                      # 100k orders, 500k touchpoints
    .venv/bin/python bench/attribution.py --orders 1000000 --touchpoints 5000000

Starts its own embedded PostgreSQL in a temporary directory; the recompute runs in this
process exactly as the worker runs it (`recompute_pending`), so its memory is the worker's.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from skeldir import admin, migrate
from skeldir.attribution import models
from skeldir.attribution.learning import learn_weights
from skeldir.attribution.paths import order_path
from skeldir.attribution.recompute import (
    finish_run,
    load_tenant_attribution,
    recompute_pending,
    start_run,
)
from skeldir.attribution.weighted import weighted_credits
from skeldir.config import Settings
from skeldir.crypto import new_secret_key, secret_box
from skeldir.db import create_pool, owner_connection, tenant_transaction
from skeldir.embedded.postgres import EmbeddedPostgres
from skeldir.provision import Roles, provision, role_url

ORDERED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

# Landing URLs of typical journeys; their hints decide each touchpoint's channel.
LANDINGS = [
    {"utm_source": "google", "utm_medium": "cpc", "click_ids": [["gclid", "x"]]},
    {"referring_domain": "www.google.com", "landing_path": "/"},
    {"utm_source": "facebook", "utm_medium": "paid_social", "click_ids": [["fbclid", "y"]]},
    {"referring_domain": "www.instagram.com", "landing_path": "/"},
    {"utm_source": "newsletter", "utm_medium": "email"},
    {"referring_domain": "blog.example.org", "landing_path": "/"},
    {"landing_path": "/", "source_name": "web"},
    {"utm_source": "partner", "utm_medium": "affiliate"},
]

TOUCHPOINTS_SQL = """
INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at, hints)
SELECT $1::uuid, 't' || i, 'v' || (i % $3::int), $4::timestamptz - random() * interval '25 days',
       ($5::jsonb[])[1 + (i::bigint * 7919 % cardinality($5::jsonb[]))::int]
FROM generate_series(1, $2::int) AS i
"""

ORDERS_SQL = """
INSERT INTO orders (tenant_id, order_id, provider, external_order_id, has_snapshot, currency,
                    total_minor, ordered_at, source_updated_at, hints, visitor_id, version)
SELECT $1::uuid, md5('o' || i)::uuid, 'shopify', i::text, true, 'USD', 1000 + (i % 9000),
       $3::timestamptz, $3::timestamptz, '{}', 'v' || (i % $2::int), 1
FROM generate_series(1, $2::int) AS i
"""

# A sale per order, and a partial refund on every tenth.
ENTRIES_SQL = """
INSERT INTO revenue_entries (tenant_id, order_id, provider, external_entry_id, kind, amount_minor,
                             currency, occurred_at, event_id)
SELECT $1::uuid, md5('o' || i)::uuid, 'shopify', 'order:' || i, 'sale', 1000 + (i % 9000), 'USD',
       $3::timestamptz, $4::uuid
FROM generate_series(1, $2::int) AS i
UNION ALL
SELECT $1::uuid, md5('o' || i)::uuid, 'shopify', 'refund:' || i, 'refund',
       -((1000 + (i % 9000)) / 3), 'USD', $3::timestamptz, $4::uuid
FROM generate_series(1, $2::int, 10) AS i
"""

MARK_ALL_SQL = """
INSERT INTO pending_orders (tenant_id, order_id, order_version)
SELECT tenant_id, order_id, version FROM orders WHERE tenant_id = $1
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def generate(pool, settings, tenant_id, orders: int, touchpoints: int) -> float:
    """One visitor per order; each has about touchpoints/orders visits in the 25 days before."""
    started = time.perf_counter()
    landings = list(LANDINGS)
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(TOUCHPOINTS_SQL, tenant_id, touchpoints, orders, ORDERED_AT, landings)
        await conn.execute(ORDERS_SQL, tenant_id, orders, ORDERED_AT)
        await conn.execute(ENTRIES_SQL, tenant_id, orders, ORDERED_AT, uuid.uuid4())
    with owner_connection(settings, autocommit=True) as conn:
        for table in ("touchpoints", "orders", "revenue_entries"):
            conn.execute(f"ANALYZE {table}")
    return time.perf_counter() - started


async def recompute_all(pool, tenant_id) -> tuple[float, int]:
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(MARK_ALL_SQL, tenant_id)
    job = uuid.uuid4()
    started = time.perf_counter()
    await start_run(pool, tenant_id, job)
    outcome = await recompute_pending(pool, tenant_id, batch_size=5000, max_batches=10**6)
    await finish_run(pool, tenant_id, job, outcome)
    return time.perf_counter() - started, outcome.orders


async def per_model_rates(pool, tenant_id, sample: int) -> dict[str, float]:
    """Pure allocation per model over a sample of real paths (no database in the timing)."""
    async with tenant_transaction(pool, tenant_id) as conn:
        tenant = await load_tenant_attribution(conn, tenant_id)
        rows = await conn.fetch(
            "SELECT o.order_id, o.ordered_at, t.touchpoint_id, t.occurred_at, t.hints"
            " FROM (SELECT order_id, ordered_at, visitor_id FROM orders WHERE tenant_id = $1"
            "       ORDER BY order_id LIMIT $2) o"
            " JOIN touchpoints t ON t.tenant_id = $1 AND t.visitor_id = o.visitor_id",
            tenant_id,
            sample,
        )
    journeys: dict = {}
    for r in rows:
        journeys.setdefault((r["order_id"], r["ordered_at"]), []).append(
            (r["touchpoint_id"], r["occurred_at"], r["hints"])
        )
    paths = [
        (order_path(journey, {}, at, tenant.classify, tenant.lookback), at)
        for (_, at), journey in journeys.items()
    ]
    rates = {}
    for model in models.RULE_BASED_MODELS:
        started = time.perf_counter()
        for path, at in paths:
            models.allocate(
                model, path, 5000, at, half_life=tenant.half_life, lookback=tenant.lookback
            )
        rates[model] = len(paths) / (time.perf_counter() - started)
    for model in ("markov", "shapley"):
        if model not in tenant.learned:
            continue
        started = time.perf_counter()
        for path, _at in paths:
            weighted_credits(
                [touchpoint.channel for touchpoint in path], tenant.learned[model], 5000
            )
        rates[model] = len(paths) / (time.perf_counter() - started)
    return rates


async def run(args) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="skb-attr-", dir="/tmp"))
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        roles = Roles("skeldir", "skeldir_owner", "skeldir_app")
        provision(server.dsn(), roles)
        settings = Settings(
            data_dir=data_dir,
            secret_key=new_secret_key(),
            owner_database_url=role_url(server.dsn(), "skeldir", "skeldir_owner"),
            database_url=role_url(server.dsn(), "skeldir", "skeldir_app"),
        )
        migrate.upgrade(settings)
        with owner_connection(settings) as conn:
            tenant_id = admin.create_tenant(conn, secret_box(settings), "bench").tenant_id
        pool = await create_pool(settings, max_size=4, plan_every_query=True)
        print(
            f"generating {args.orders:,} orders and {args.touchpoints:,} touchpoints ...",
            flush=True,
        )
        generated = await generate(pool, settings, tenant_id, args.orders, args.touchpoints)
        print(f"  generated in {generated:.1f}s", flush=True)

        seconds, orders = await recompute_all(pool, tenant_id)
        rule_based = orders / seconds
        print(
            f"rule-based models (6 together), end to end: {orders:,} orders in {seconds:.1f}s "
            f"= {rule_based:,.0f} orders/s",
            flush=True,
        )

        started = time.perf_counter()
        learned = await learn_weights(pool, tenant_id, now=ORDERED_AT + timedelta(days=1))
        learn_seconds = time.perf_counter() - started
        print(
            f"learning Markov and Shapley weights: {learn_seconds:.1f}s "
            f"({learned[0].paths if learned else 0:,} journeys)",
            flush=True,
        )
        seconds_all, orders_all = await recompute_all(pool, tenant_id)
        all_models = orders_all / seconds_all
        print(
            f"all 8 models together, end to end: {orders_all:,} orders in {seconds_all:.1f}s "
            f"= {all_models:,.0f} orders/s",
            flush=True,
        )
        rates = await per_model_rates(pool, tenant_id, min(args.orders, 50_000))
        await pool.close()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    peak = peak_rss_mib()
    print()
    print(f"attribution, {args.orders:,} orders, {args.touchpoints:,} touchpoints, one process")
    print(f"{'what':<52}{'measured':>16}  target")
    print(f"{'rule-based, all six, end to end (orders/s)':<52}{rule_based:>16,.0f}  >= 50,000")
    print(f"{'all eight incl. Markov and Shapley, end to end':<52}{all_models:>16,.0f}  >= 20,000")
    for model, rate in rates.items():
        print(f"{'  pure allocation: ' + model:<52}{rate:>16,.0f}")
    print(f"{'learning Markov + Shapley weights (s)':<52}{learn_seconds:>16.1f}")
    print(f"{'peak memory of the recompute process (MiB)':<52}{peak:>16,.0f}  < 1,024")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--touchpoints", type=int, default=500_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
