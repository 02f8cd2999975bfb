"""Re-attribute a date range of a tenant's orders: mark them pending, and the chain (or the
sweeper) recomputes them. Runs as the runtime role under the tenant's row-level security (the
API and `skeldir recompute`). A batch per transaction keeps a large range from holding locks
for long."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone

import asyncpg

from skeldir.base.db import tenant_transaction

MARK_BATCH_SIZE = 5000

# The next batch of the range's orders ($1 tenant, $2 and $3 the range) after order id $4.
NEXT_BATCH_SQL = """
SELECT order_id FROM orders
WHERE tenant_id = $1 AND has_snapshot AND ordered_at >= $2 AND ordered_at < $3
  AND order_id > $4
ORDER BY order_id LIMIT $5
"""


def utc_day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start, end] as UTC days: reports group orders by their UTC day."""
    return (
        datetime.combine(start, time.min, tzinfo=timezone.utc),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc),
    )


async def orders_in_range(pool: asyncpg.Pool, tenant_id: uuid.UUID, start: date, end: date) -> int:
    async with tenant_transaction(pool, tenant_id) as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM orders WHERE tenant_id = $1 AND has_snapshot"
            " AND ordered_at >= $2 AND ordered_at < $3",
            tenant_id,
            *utc_day_bounds(start, end),
        )


async def pending_orders(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> int:
    async with tenant_transaction(pool, tenant_id) as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM pending_orders WHERE tenant_id = $1", tenant_id
        )


async def mark_range_pending(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    start: date,
    end: date,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Mark the orders of [start, end] pending; returns how many were marked."""
    if end < start:
        raise ValueError("the range ends before it starts")
    since, until = utc_day_bounds(start, end)
    after, marked = uuid.UUID(int=0), 0
    while True:
        async with tenant_transaction(pool, tenant_id) as conn:
            order_ids = [
                row["order_id"]
                for row in await conn.fetch(
                    NEXT_BATCH_SQL, tenant_id, since, until, after, MARK_BATCH_SIZE
                )
            ]
            if order_ids:
                await conn.execute("SELECT mark_orders_pending($1, $2)", tenant_id, order_ids)
        if not order_ids:
            return marked
        after = order_ids[-1]
        marked += len(order_ids)
        if on_batch is not None:
            on_batch(len(order_ids))
