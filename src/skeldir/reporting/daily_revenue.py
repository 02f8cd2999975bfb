"""The daily_revenue report: gross, refunds, cancellations and net per day and currency, also
converted into the tenant's reporting currency at each order's stamped rate.

A day's rows are rebuilt from the ledger whenever an order with an entry on that day changed,
so the cost follows the days touched, not the size of the tenant's history.
"""

from __future__ import annotations

import uuid

import asyncpg

NAME = "daily_revenue"

_TOUCHED_DAYS_SQL = """
SELECT DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date AS day
FROM revenue_entries e WHERE e.tenant_id = $1 AND e.order_id = ANY($2::uuid[])
"""

_DELETE_DAYS_SQL = "DELETE FROM daily_revenue WHERE tenant_id = $1 AND day = ANY($2::date[])"

_INSERT_DAYS_SQL = """
INSERT INTO daily_revenue (tenant_id, day, currency, gross_minor, refunds_minor,
    cancellations_minor, net_minor, orders, reporting_currency, gross_reporting_minor,
    refunds_reporting_minor, cancellations_reporting_minor, net_reporting_minor,
    unconverted_entries)
SELECT $1, x.day, x.currency, x.gross, x.refunds, x.cancellations,
       x.gross + x.refunds + x.cancellations, x.orders, t.reporting_currency,
       x.gross_rep, x.refunds_rep, x.cancellations_rep,
       x.gross_rep + x.refunds_rep + x.cancellations_rep, x.unconverted
FROM (
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, e.currency,
           coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'sale'), 0) AS gross,
           coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'refund'), 0) AS refunds,
           coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'cancellation'), 0) AS cancellations,
           count(DISTINCT e.order_id) FILTER (WHERE e.kind = 'sale') AS orders,
           coalesce(sum(round(e.amount_minor * o.fx_factor))
                    FILTER (WHERE e.kind = 'sale'), 0) AS gross_rep,
           coalesce(sum(round(e.amount_minor * o.fx_factor))
                    FILTER (WHERE e.kind = 'refund'), 0) AS refunds_rep,
           coalesce(sum(round(e.amount_minor * o.fx_factor))
                    FILTER (WHERE e.kind = 'cancellation'), 0) AS cancellations_rep,
           count(*) FILTER (WHERE o.fx_factor IS NULL) AS unconverted
    FROM revenue_entries e
    JOIN orders o ON o.tenant_id = e.tenant_id AND o.order_id = e.order_id
    WHERE e.tenant_id = $1 AND e.occurred_at >= (SELECT min(d) FROM unnest($2::date[]) d)
      AND (e.occurred_at AT TIME ZONE 'UTC')::date = ANY($2::date[])
    GROUP BY 1, 2
) x
JOIN tenants t ON t.tenant_id = $1
"""


async def refresh(conn: asyncpg.Connection, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]) -> int:
    days = [r["day"] for r in await conn.fetch(_TOUCHED_DAYS_SQL, tenant_id, order_ids)]
    if not days:
        return 0
    await conn.execute(_DELETE_DAYS_SQL, tenant_id, days)
    status = await conn.execute(_INSERT_DAYS_SQL, tenant_id, days)
    return int(status.rsplit(" ", 1)[-1])


async def rebuild(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    await conn.execute("DELETE FROM daily_revenue WHERE tenant_id = $1", tenant_id)
    order_ids = [r["order_id"] for r in await conn.fetch(
        "SELECT order_id FROM orders WHERE tenant_id = $1", tenant_id)]
    return await refresh(conn, tenant_id, order_ids)
