"""Attribution throughput: recompute a tenant with many orders and touchpoints (generated),
printing orders/s end to end (database reads and writes included) and per model, the CPU each
order costs (this process and its PostgreSQL backends), and memory.

    .venv/bin/python bench/attribution.py                      # 100k orders, 500k touchpoints
    .venv/bin/python bench/attribution.py --orders 1000000 --touchpoints 5000000

Starts its own embedded PostgreSQL in a temporary directory; the recompute runs in this
process exactly as the worker runs it (`recompute_pending`), so its memory is the worker's.
The CPU per order is this process's CPU time plus that of the PostgreSQL backends of the
worker's role (sampled from pg_stat_activity) over the orders recomputed: the batch figure that
bench/ingest.py's live cost per attributed order is held against (within 3x).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import numpy as np

import common
import meters
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_worker_pool, owner_connection, tenant_transaction
from skeldir.domains.attribution import models
from skeldir.domains.attribution.batch import Batch, allocate_batch
from skeldir.domains.attribution.channel_rules import default_rule_set
from skeldir.domains.attribution.channels import channel_sort_key
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.learning import learn_weights
from skeldir.domains.attribution.model_settings import ModelSettings
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.attribution.tenant_attribution import load_tenant_attribution
from skeldir.domains.ingestion.hints import hints_from_document
from skeldir.operations import tenants

BATCH_SIZE = 20_000
# Generating 5M touchpoints in one statement can pass the pools' 60 s limits on a busy machine:
# the data set is not what is measured, so its statements may take longer.
GENERATE_TIMEOUT = 1800.0
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

# Stored as collection stores them: each with its channel under the rules in force.
TOUCHPOINTS_SQL = """
INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at, hints, channel,
                         platform, rules_version)
SELECT $1::uuid, 't' || i, 'v' || (i % ($3::int + $3::int / 4)),
       $4::timestamptz - random() * interval '25 days',
       ($5::jsonb[])[k], ($6::text[])[k], ($7::text[])[k], 0
FROM generate_series(1, $2::int) AS i,
     LATERAL (SELECT 1 + (i::bigint * 7919 % cardinality($5::jsonb[]))::int AS k) AS landing
"""

ORDERS_SQL = """
INSERT INTO orders (tenant_id, order_id, provider, external_order_id, has_snapshot, currency,
                    total_minor, ordered_at, source_updated_at, hints, visitor_id, version)
SELECT $1::uuid, md5('o' || i)::uuid, 'shopify', i::text, true, 'USD', 1000 + (i % 9000),
       $3::timestamptz, $3::timestamptz, '{}', 'v' || (i % $2::int), 1
FROM generate_series(1, $2::int) AS i
"""

# A sale per order, and a partial refund on every tenth; the daily revenue report already
# counts them (as it does soon after ingestion), so the recompute measures attribution alone.
ENTRIES_SQL = """
INSERT INTO revenue_entries (tenant_id, order_id, provider, external_entry_id, kind, amount_minor,
                             currency, occurred_at, event_id, reported_amount_minor,
                             reported_reporting_minor, reported_converted, sent_amount_minor,
                             sent_currency)
SELECT tenant_id, order_id, provider, external_entry_id, kind, amount, 'USD', $3::timestamptz,
       $4::uuid, amount, amount, true, amount, 'USD'
FROM (
    SELECT $1::uuid AS tenant_id, md5('o' || i)::uuid AS order_id, 'shopify' AS provider,
           'order:' || i AS external_entry_id, 'sale' AS kind, 1000 + (i % 9000) AS amount
    FROM generate_series(1, $2::int) AS i
    UNION ALL
    SELECT $1::uuid, md5('o' || i)::uuid, 'shopify', 'refund:' || i, 'refund',
           -((1000 + (i % 9000)) / 3)
    FROM generate_series(1, $2::int, 10) AS i
) AS entries
"""

MARK_ALL_SQL = """
INSERT INTO pending_orders (tenant_id, order_id, order_version)
SELECT tenant_id, order_id, version FROM orders WHERE tenant_id = $1
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def generate(pool, settings, tenant_id, orders: int, touchpoints: int) -> float:
    """A visitor per order, and a quarter as many again who never buy (the data-driven models
    learn from both); each visitor has about touchpoints / (1.25 * orders) visits in the 25
    days before."""
    started = time.perf_counter()
    landings = list(LANDINGS)
    async with tenant_transaction(pool, tenant_id) as conn:
        channels = [default_rule_set().classify(hints_from_document(h)) for h in landings]
        platforms = [default_rule_set().platform(hints_from_document(h)) for h in landings]
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute(
            TOUCHPOINTS_SQL, tenant_id, touchpoints, orders, ORDERED_AT, landings, channels,
            platforms, timeout=GENERATE_TIMEOUT
        )
        await conn.execute(ORDERS_SQL, tenant_id, orders, ORDERED_AT, timeout=GENERATE_TIMEOUT)
    # The entries' foreign key checks are planned from the orders' statistics: taken before
    # another tenant's orders arrived, they would make each check scan the table.
    analyze(settings, "touchpoints", "orders")
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute(
            ENTRIES_SQL, tenant_id, orders, ORDERED_AT, uuid.uuid4(), timeout=GENERATE_TIMEOUT
        )
    analyze(settings, "revenue_entries")
    return time.perf_counter() - started


def analyze(settings, *tables: str) -> None:
    with owner_connection(settings, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"ANALYZE {table}")


async def recompute_all(pool, tenant_id) -> tuple[float, int]:
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(MARK_ALL_SQL, tenant_id)
    job = uuid.uuid4()
    started = time.perf_counter()
    await start_run(pool, tenant_id, job)
    outcome = await recompute_pending(pool, tenant_id, batch_size=BATCH_SIZE, max_batches=10**6)
    await finish_run(pool, tenant_id, job, outcome)
    return time.perf_counter() - started, outcome.orders


async def costed_recompute(pool, settings, tenant_id) -> tuple[float, int, float]:
    """recompute_all, and the CPU seconds it cost: this process's plus its backends'."""
    role = urlsplit(settings.worker_database_url).username
    backends = meters.BackendCpuMeter(settings.owner_database_url, [role])
    backends.start()
    process_before = time.process_time()
    seconds, orders = await recompute_all(pool, tenant_id)
    process = time.process_time() - process_before
    postgres = backends.stop()[role]
    print(
        f"  CPU: this process {process:.1f}s, its PostgreSQL backends {postgres:.1f}s",
        flush=True,
    )
    return seconds, orders, process + postgres


def per_model_rates(orders: int, touchpoints: int, learned: dict) -> dict[str, float]:
    """The batch engine alone, per model, on generated paths shaped like the database's
    (no database in the timing): orders/s."""
    rng = np.random.default_rng(7)
    lengths = np.maximum(1, rng.poisson(touchpoints / orders, orders))
    offsets = np.zeros(orders + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    channels = tuple(sorted(default_rule_set().channels, key=channel_sort_key))
    total = int(offsets[-1])
    ages = np.sort(rng.integers(0, 25 * 86_400_000_000, total))[::-1].copy()
    refunds = np.arange(0, orders, 10)
    batch = Batch(
        offsets,
        rng.integers(0, len(channels), total),
        ages,
        np.concatenate([np.arange(orders), refunds]),
        np.concatenate([1000 + np.arange(orders) % 9000, -(1000 + refunds % 9000) // 3]),
        np.concatenate([np.ones(orders, dtype=bool), np.zeros(len(refunds), dtype=bool)]),
    )
    rates = {}
    for model in models.RULE_BASED_MODELS + tuple(learned):
        settings = ModelSettings(channels, timedelta(days=7), (model,), learned)
        started = time.perf_counter()
        for start in range(0, orders, 10_000):
            end = min(orders, start + 10_000)
            first, last = offsets[start], offsets[end]
            entries = (batch.entry_order >= start) & (batch.entry_order < end)
            allocate_batch(
                Batch(
                    offsets[start : end + 1] - first,
                    batch.channel[first:last],
                    batch.age_us[first:last],
                    batch.entry_order[entries] - start,
                    batch.entry_amount[entries],
                    batch.entry_is_sale[entries],
                ),
                settings,
            )
        rates[model] = orders / (time.perf_counter() - started)
    return rates


async def measure(
    orders: int, touchpoints: int, figures: dict[str, float]
) -> list[tuple[str, str, str, str]]:
    """Generate, recompute (rule-based, then all eight models), learn; print as it goes and
    return the table's rows. `figures` receives the CPU per order (microseconds) of each
    recompute, for bench/run_all.py to set beside the live worker's."""
    with common.embedded_database("skb-attr-") as settings:
        with owner_connection(settings) as conn:
            tenant_id = tenants.create_tenant(conn, secret_box(settings), "bench").tenant_id
        pool = await create_worker_pool(settings, max_size=4)
        print(f"generating {orders:,} orders and {touchpoints:,} touchpoints ...", flush=True)
        generated = await generate(pool, settings, tenant_id, orders, touchpoints)
        print(f"  generated in {generated:.1f}s", flush=True)

        seconds, attributed, cpu = await costed_recompute(pool, settings, tenant_id)
        rule_based = attributed / seconds
        figures["batch_us_per_order"] = cpu / attributed * 1e6
        print(
            f"rule-based models (6 together), end to end: {attributed:,} orders in {seconds:.1f}s "
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
        seconds_all, attributed_all, cpu_all = await costed_recompute(pool, settings, tenant_id)
        all_models = attributed_all / seconds_all
        figures["batch_all_models_us_per_order"] = cpu_all / attributed_all * 1e6
        print(
            f"all 8 models together, end to end: {attributed_all:,} orders in {seconds_all:.1f}s "
            f"= {all_models:,.0f} orders/s",
            flush=True,
        )
        async with tenant_transaction(pool, tenant_id) as conn:
            learned_weights = (await load_tenant_attribution(conn, tenant_id)).learned
        await pool.close()

    peak = peak_rss_mib()
    rates = per_model_rates(min(orders, 200_000), min(touchpoints, 1_000_000), learned_weights)
    rows = [
        (
            "rule-based, all six, end to end",
            f"{rule_based:,.0f} orders/s",
            ">= 50,000",
            common.verdict(rule_based >= 50_000),
        ),
        (
            "all eight incl. Markov and Shapley, end to end",
            f"{all_models:,.0f} orders/s",
            ">= 20,000",
            common.verdict(all_models >= 20_000),
        ),
        *(
            (f"  batch engine alone: {model}", f"{rate:,.0f} orders/s", "-", "")
            for model, rate in rates.items()
        ),
        (
            "rule-based recompute CPU per order (process + its PostgreSQL)",
            f"{figures['batch_us_per_order']:,.1f} us",
            "-",
            "",
        ),
        (
            "all-eight recompute CPU per order (process + its PostgreSQL)",
            f"{figures['batch_all_models_us_per_order']:,.1f} us",
            "-",
            "",
        ),
        ("learning Markov + Shapley weights", f"{learn_seconds:.1f} s", "-", ""),
        (
            "peak memory of the recompute process",
            f"{peak:,.0f} MiB",
            "< 1,024 MiB",
            common.verdict(peak < 1024),
        ),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--touchpoints", type=int, default=500_000)
    common.add_rows_argument(parser)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    rows = asyncio.run(measure(args.orders, args.touchpoints, figures))
    common.finish(
        args,
        f"attribution, {args.orders:,} orders, {args.touchpoints:,} touchpoints, one process",
        rows,
        figures,
    )


if __name__ == "__main__":
    main()
