"""The allocation_summary report: per order and model, allocated vs revenue, and drift."""

from __future__ import annotations

import uuid

import asyncpg

NAME = "allocation_summary"

_UPSERT_SQL = """
INSERT INTO allocation_summary AS s (tenant_id, order_id, model, day, currency, revenue_cents,
    allocated_cents, drift_cents, is_balanced, refreshed_at)
SELECT a.tenant_id, a.order_id, a.model, (o.ordered_at AT TIME ZONE 'UTC')::date, a.currency,
       a.revenue_minor, t.allocated, t.allocated - a.revenue_minor, t.allocated = a.revenue_minor,
       now()
FROM attribution_allocations a
JOIN orders o ON o.tenant_id = a.tenant_id AND o.order_id = a.order_id
CROSS JOIN LATERAL (SELECT coalesce(sum(c), 0)::bigint AS allocated
                    FROM unnest(a.credits_minor) AS c) t
WHERE a.tenant_id = $1 AND a.order_id = ANY($2::uuid[])
ON CONFLICT (tenant_id, order_id, model) DO UPDATE SET
    day = EXCLUDED.day, currency = EXCLUDED.currency, revenue_cents = EXCLUDED.revenue_cents,
    allocated_cents = EXCLUDED.allocated_cents, drift_cents = EXCLUDED.drift_cents,
    is_balanced = EXCLUDED.is_balanced, refreshed_at = EXCLUDED.refreshed_at
"""

_DROP_ORPHANS_SQL = """
DELETE FROM allocation_summary s
WHERE s.tenant_id = $1 AND s.order_id = ANY($2::uuid[])
  AND NOT EXISTS (SELECT 1 FROM attribution_allocations a WHERE a.tenant_id = s.tenant_id
                  AND a.order_id = s.order_id AND a.model = s.model)
"""


async def refresh(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]
) -> int:
    await conn.execute(_DROP_ORPHANS_SQL, tenant_id, order_ids)
    status = await conn.execute(_UPSERT_SQL, tenant_id, order_ids)
    return int(status.rsplit(" ", 1)[-1])


async def rebuild(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    order_ids = [
        r["order_id"]
        for r in await conn.fetch(
            "SELECT DISTINCT order_id FROM attribution_allocations WHERE tenant_id = $1", tenant_id
        )
    ]
    await conn.execute("DELETE FROM allocation_summary WHERE tenant_id = $1", tenant_id)
    return await refresh(conn, tenant_id, order_ids)
