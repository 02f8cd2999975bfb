"""The performance report at scale: a tenant with 1M orders over 90 days, 5M touchpoints through
campaign-tagged ad URLs and 100k spend rows; the report's first page, per level, over the 90 days.

    .venv/bin/python bench/performance_report.py             # 1M orders, 5M touchpoints, 100k spend rows
    .venv/bin/python bench/performance_report.py --orders 100000 --touchpoints 500000

Starts its own embedded PostgreSQL in a temporary directory. The data is generated in SQL, the
rule-based models attribute it as the worker does (`recompute_pending`, which keeps
`campaign_daily`), and each level's first page (100 rows, model linear, the reporting currency)
is read as the API reads it (`performance_rows` in a read-only tenant transaction), 25 times:
p50 and p95 are printed beside the target (p95 <= 200 ms at level campaign). An order's change
reaches `campaign_daily` in the same transaction as it reaches `channel_daily`, so the campaign
report is as fresh as the channel report by construction (bench/freshness.py measures that).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import common
from attribution import MARK_ALL_SQL, analyze
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_worker_pool, owner_connection, tenant_transaction
from skeldir.domains.attribution.channel_rules import default_rule_set
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.ingestion.hints import hints_from_document
from skeldir.domains.reporting.performance import LEVELS, performance_rows
from skeldir.operations import tenants

LAST_DAY = datetime(2026, 3, 31, 12, 0, tzinfo=timezone.utc)
DAYS = 90
PLATFORMS = {"meta": ("facebook", "paid_social", "fbclid"),
             "google_ads": ("google", "cpc", "gclid"),
             "tiktok": ("tiktok", "paid", "ttclid")}
ORGANIC = [
    {"referring_domain": "www.google.com", "landing_path": "/"},
    {"utm_source": "newsletter", "utm_medium": "email"},
    {"landing_path": "/", "source_name": "web"},
]
RUNS = 25
# Generating millions of rows takes longer than the pool's statement timeout.
LONG = 3600
TARGET_P95_MS = 200

# Touchpoint i is visitor i % V's; the visitor's order (if any) is order v + 1, placed on day
# v % DAYS before the last; each visit falls in the 25 days before it.
TOUCHPOINTS_SQL = """
INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at, hints, channel,
                         platform, rules_version)
SELECT $1::uuid, 't' || i, 'v' || v,
       $4::timestamptz - (v % $8::int) * interval '1 day' - random() * interval '25 days',
       ($5::jsonb[])[k], ($6::text[])[k], ($7::text[])[k], 0
FROM generate_series(1, $2::int) AS i,
     LATERAL (SELECT i % ($3::int + $3::int / 4) AS v) AS visitor,
     LATERAL (SELECT 1 + (i::bigint * 7919 % cardinality($5::jsonb[]))::int AS k) AS landing
"""

ORDERS_SQL = """
INSERT INTO orders (tenant_id, order_id, provider, external_order_id, has_snapshot, currency,
                    total_minor, ordered_at, source_updated_at, hints, visitor_id, version)
SELECT $1::uuid, md5('o' || i)::uuid, 'shopify', i::text, true, 'USD', 1000 + (i % 9000),
       $3::timestamptz - ((i - 1) % $4::int) * interval '1 day',
       $3::timestamptz - ((i - 1) % $4::int) * interval '1 day', '{}', 'v' || (i - 1), 1
FROM generate_series(1, $2::int) AS i
"""

ENTRIES_SQL = """
INSERT INTO revenue_entries (tenant_id, order_id, provider, external_entry_id, kind, amount_minor,
                             currency, occurred_at, event_id, reported_amount_minor,
                             reported_reporting_minor, reported_converted, sent_amount_minor,
                             sent_currency)
SELECT $1::uuid, o.order_id, 'shopify', 'order:' || o.external_order_id, 'sale', o.total_minor,
       'USD', o.ordered_at, $2::uuid, o.total_minor, o.total_minor, true, o.total_minor, 'USD'
FROM orders o WHERE o.tenant_id = $1
"""

# One row per ad and day: PLATFORMS x campaigns x ad sets x ads, DAYS days.
SPEND_SQL = """
INSERT INTO ad_spend (tenant_id, day, platform, account_id, campaign_id, adset_id, ad_id,
                      campaign_name, adset_name, ad_name, currency, spend_minor, impressions,
                      clicks)
SELECT $1::uuid, $2::date - d, p, 'acct_' || p, p || '_c' || c, p || '_c' || c || '_s' || s,
       p || '_c' || c || '_s' || s || '_a' || a, 'Campaign ' || c, 'Ad set ' || s, 'Ad ' || a,
       'USD', 500 + (d * 37 + c * 11 + s * 7 + a) % 5000, 1000, 40
FROM unnest($3::text[]) AS p, generate_series(1, $4::int) AS c, generate_series(1, $5::int) AS s,
     generate_series(1, $6::int) AS a, generate_series(0, $7::int - 1) AS d
"""

def ad_grid(spend_rows: int) -> tuple[int, int, int]:
    """Campaigns per platform, ad sets per campaign, ads per ad set: about `spend_rows` rows."""
    ads_per_day = max(1, spend_rows // DAYS // len(PLATFORMS))
    adsets, ads = 4, 5
    return max(1, round(ads_per_day / (adsets * ads))), adsets, ads


def landings(campaigns: int, adsets: int, ads: int) -> list[dict]:
    """Every ad's tagged URL, and a few organic landings."""
    tagged = [
        {"utm_source": source, "utm_medium": medium, "utm_campaign": f"Campaign {c}",
         "utm_id": f"{p}_c{c}", "skd_adset": f"{p}_c{c}_s{s}", "skd_ad": f"{p}_c{c}_s{s}_a{a}",
         "click_ids": [[click, "x"]]}
        for p, (source, medium, click) in PLATFORMS.items()
        for c in range(1, campaigns + 1) for s in range(1, adsets + 1) for a in range(1, ads + 1)
    ]
    return tagged + ORGANIC * max(1, len(tagged) // 10)


async def generate(pool, settings, tenant_id, orders: int, touchpoints: int, spend: int) -> int:
    campaigns, adsets, ads = ad_grid(spend)
    documents = landings(campaigns, adsets, ads)
    rules = default_rule_set()
    hints = [hints_from_document(document) for document in documents]
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(TOUCHPOINTS_SQL, tenant_id, touchpoints, orders, LAST_DAY, documents,
                           [rules.classify(h) for h in hints], [rules.platform(h) for h in hints],
                           DAYS, timeout=LONG)
        await conn.execute(ORDERS_SQL, tenant_id, orders, LAST_DAY, DAYS, timeout=LONG)
    analyze(settings, "touchpoints", "orders")
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(ENTRIES_SQL, tenant_id, uuid.uuid4(), timeout=LONG)
        await conn.execute(SPEND_SQL, tenant_id, LAST_DAY.date(), list(PLATFORMS), campaigns,
                           adsets, ads, DAYS, timeout=LONG)
        loaded = await conn.fetchval("SELECT count(*) FROM ad_spend")
    analyze(settings, "revenue_entries", "ad_spend")
    return loaded


async def attribute(pool, tenant_id) -> float:
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(MARK_ALL_SQL, tenant_id, timeout=LONG)
    job = uuid.uuid4()
    started = time.perf_counter()
    await start_run(pool, tenant_id, job)
    outcome = await recompute_pending(pool, tenant_id, batch_size=20_000, max_batches=10**6)
    await finish_run(pool, tenant_id, job, outcome)
    return time.perf_counter() - started


async def first_page_ms(pool, tenant_id, level: str, start: date, end: date) -> list[float]:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
            rows = await performance_rows(conn, "linear", level, start, end, None, None, 101)
        timings.append((time.perf_counter() - started) * 1000)
        assert rows, f"no {level} rows"
    return timings


async def measure(orders: int, touchpoints: int, spend: int) -> list[tuple[str, str, str, str]]:
    with common.embedded_database("skb-perf-") as settings:
        with owner_connection(settings) as conn:
            tenant_id = tenants.create_tenant(conn, secret_box(settings), "bench").tenant_id
        pool = await create_worker_pool(settings, max_size=4)
        started = time.perf_counter()
        loaded = await generate(pool, settings, tenant_id, orders, touchpoints, spend)
        print(f"generated {orders:,} orders, {touchpoints:,} touchpoints, {loaded:,} spend rows"
              f" in {time.perf_counter() - started:.0f} s", flush=True)
        seconds = await attribute(pool, tenant_id)
        print(f"attributed (six rule-based models, campaign_daily kept) in {seconds:.0f} s",
              flush=True)
        analyze(settings, "campaign_daily")
        async with tenant_transaction(pool, tenant_id) as conn:
            grains = await conn.fetchval("SELECT count(*) FROM campaign_daily")
        print(f"campaign_daily: {grains:,} rows", flush=True)
        end = LAST_DAY.date()
        start = end - timedelta(days=DAYS - 1)
        rows = []
        for level in LEVELS:
            timings = await first_page_ms(pool, tenant_id, level, start, end)
            p50 = statistics.median(timings)
            p95 = sorted(timings)[int(0.95 * (len(timings) - 1))]
            print(f"level {level}: p50 {p50:.0f} ms, p95 {p95:.0f} ms", flush=True)
            target = f"<= {TARGET_P95_MS} ms" if level == "campaign" else "-"
            verdict = common.verdict(p95 <= TARGET_P95_MS) if level == "campaign" else ""
            rows.append((f"report first page, level {level}: p95 (p50 {p50:.0f} ms)",
                         f"{p95:.0f} ms", target, verdict))
        await pool.close()
    rows.append(("campaign report freshness", "same transaction as the channel report", "-", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--touchpoints", type=int, default=5_000_000)
    parser.add_argument("--spend-rows", type=int, default=100_000)
    common.add_rows_argument(parser)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.orders, args.touchpoints, args.spend_rows))
    common.finish(args, f"performance report, {args.orders:,} orders, {args.touchpoints:,}"
                  f" touchpoints, {args.spend_rows:,} spend rows, 90 days", rows)


if __name__ == "__main__":
    main()
