"""Privacy upkeep on a large tenant: one erasure, the retention run, and tenant deletion.

    .venv/bin/python bench/privacy.py                   # 200,000 orders
    .venv/bin/python bench/privacy.py --orders 1000000

Starts its own embedded PostgreSQL in a temporary directory. A tenant gets N orders (each with
a visitor id and a customer key), 3N touchpoints of those visitors spread over 500 days and N
stored events, generated inside PostgreSQL. Then, as the runtime role: the erasure of one
customer (median of several customers; it must follow the customer, not the tenant), the
retention run over that backlog (the touchpoints older than 400 days, every payload copy older
than 90 days), and, as the owner, the deletion of the whole tenant (rows per second).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime, timezone

import common
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_pool, owner_connection, tenant_transaction
from skeldir.domains.ingestion.stitching import CUSTOMER, stitch_key
from skeldir.domains.ingestion.touchpoints import tenant_stitch_key
from skeldir.domains.privacy import retention
from skeldir.domains.privacy.erasure import erase
from skeldir.domains.privacy.subjects import subject_of
from skeldir.operations import tenant_deletion, tenants

ERASURES = 7
# One erasure touches a handful of rows: its time must not grow with the tenant.
ERASURE_TARGET_MS = 100

_SEED_SQL = (
    """INSERT INTO orders (tenant_id, provider, external_order_id, has_snapshot, currency,
         total_minor, ordered_at, visitor_id, customer_key)
       SELECT %(t)s, 'shopify', g::text, true, 'USD', 1000, now() - (g %% 500) * interval '1 day',
              'v' || g, decode(md5('c' || g), 'hex')
       FROM generate_series(1, %(n)s) g""",
    """INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at)
       SELECT %(t)s, 't' || g, 'v' || (g %% %(n)s + 1), now() - (g %% 500) * interval '1 day'
       FROM generate_series(1, 3 * %(n)s) g""",
    """INSERT INTO webhook_events (tenant_id, source_id, provider, topic, dedupe_key,
         external_order_id, payload, received_at)
       SELECT %(t)s, %(s)s, 'shopify', 'orders/create', 'd' || g, g::text, '{"id": 1}',
              now() - (g %% 500) * interval '1 day'
       FROM generate_series(1, %(n)s) g""",
)


def erased_customers(orders: int) -> list[int]:
    return [orders // (n + 2) for n in range(ERASURES)]


def email_of(customer: int) -> str:
    return f"c{customer}@example.com"


def seed(settings, orders: int):
    box = secret_box(settings)
    with owner_connection(settings) as conn:
        created = tenants.create_tenant(conn, box, "privacy bench")
        source = tenants.add_source(conn, box, tenant_id=created.tenant_id, provider="shopify",
                                    secret="bench", public_url="http://bench")
        ciphertext = conn.execute("SELECT stitch_key_ciphertext FROM tenants WHERE tenant_id = %s",
                                  (created.tenant_id,)).fetchone()[0]
        key = box.decrypt(bytes(ciphertext), context=created.tenant_id.bytes)
        for statement in _SEED_SQL:
            conn.execute(statement, {"t": created.tenant_id, "s": source.source_id, "n": orders})
        # The customers the erasures name carry the key their email hashes to.
        for customer in erased_customers(orders):
            conn.execute("UPDATE orders SET customer_key = %s WHERE tenant_id = %s"
                         " AND external_order_id = %s",
                         (stitch_key(key, CUSTOMER, email_of(customer)), created.tenant_id,
                          str(customer)))
        conn.commit()
        conn.execute("ANALYZE")
    return created.tenant_id


async def measure(settings, tenant_id, orders: int) -> dict:
    pool = await create_pool(settings, max_size=2)
    box = secret_box(settings)
    try:
        async with tenant_transaction(pool, tenant_id) as conn:
            key = await tenant_stitch_key(conn, box, tenant_id)
        times = []
        for customer in erased_customers(orders):
            subject = subject_of(key, customer_refs=[email_of(customer)])
            started = time.perf_counter()
            async with tenant_transaction(pool, tenant_id) as conn:
                counts = await erase(conn, tenant_id, subject, tenant_key=key, box=box)
            times.append((time.perf_counter() - started) * 1000)
            assert counts.orders_redacted == 1, counts
        started = time.perf_counter()
        removed = await retention.apply(pool, tenant_id, retention.Periods(),
                                        now=datetime.now(timezone.utc))
        retention_s = time.perf_counter() - started
    finally:
        await pool.close()
    return {"erasure_ms": statistics.median(times), "removed": removed,
            "retention_s": retention_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    common.add_rows_argument(parser)
    args = parser.parse_args()
    with common.embedded_database("skb-privacy-") as settings:
        tenant_id = seed(settings, args.orders)
        figures = asyncio.run(measure(settings, tenant_id, args.orders))
        with owner_connection(settings, autocommit=True) as conn:
            rows = sum(tenant_deletion.remaining_rows(conn, tenant_id).values())
            started = time.perf_counter()
            tenant_deletion.delete_tenant(conn, tenant_id)
            deletion_s = time.perf_counter() - started
    removed = figures["removed"]
    retained = removed["touchpoints"] + removed["payload_copies"]
    common.finish(args, f"privacy: a tenant of {args.orders:,} orders", [
        ("erasure of one customer (median)", f"{figures['erasure_ms']:.1f} ms",
         f"< {ERASURE_TARGET_MS} ms", common.verdict(figures["erasure_ms"] < ERASURE_TARGET_MS)),
        ("retention run", f"{retained:,} rows in {figures['retention_s']:.1f} s",
         "bounded batches", "-"),
        ("tenant deletion", f"{rows:,} rows in {deletion_s:.1f} s "
         f"({rows / deletion_s:,.0f} rows/s)", "bounded batches", "-"),
    ])


if __name__ == "__main__":
    main()
