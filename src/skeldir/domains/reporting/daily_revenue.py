"""The daily_revenue report: gross, refunds, cancellations and net per day and currency, also
converted into the tenant's reporting currency at each order's stamped rate.

Incremental: each revenue entry remembers what the report already counts of it and where
(amount, converted amount, currency, day), so a refresh adds exactly the difference for the
entries of the changed orders. Its cost follows the change, never the size of the day or of the
tenant's history.
"""

from __future__ import annotations

import uuid

import asyncpg

NAME = "daily_revenue"

# Each changed entry takes back what the report counted of it, where it counted it (the day
# and currency it had then), and adds what it is now, where it is now: an entry whose currency
# or day was corrected moves between rows instead of being counted twice.
_APPLY_CHANGES_SQL = """
WITH changed AS (
    SELECT e.entry_id, e.kind, e.currency, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
           e.amount_minor AS amount, round(e.amount_minor * o.fx_factor)::bigint AS converted,
           e.reported_amount_minor AS old_amount, e.reported_reporting_minor AS old_converted,
           e.reported_converted AS was_converted,
           coalesce(e.reported_currency, e.currency) AS old_currency,
           coalesce(e.reported_day, (e.occurred_at AT TIME ZONE 'UTC')::date) AS old_day
    FROM revenue_entries e
    -- The rate stamped when the order was attributed (none yet: counted unconverted), and only
    -- for entries in the currency it was stamped for.
    LEFT JOIN order_attributions o ON o.tenant_id = e.tenant_id AND o.order_id = e.order_id
         AND o.currency = e.currency
    WHERE e.tenant_id = $1 AND e.order_id = ANY($2::uuid[])
      AND (e.reported_amount_minor IS DISTINCT FROM e.amount_minor
           OR e.reported_converted IS DISTINCT FROM (o.fx_factor IS NOT NULL)
           OR e.reported_reporting_minor IS DISTINCT FROM
              coalesce(round(e.amount_minor * o.fx_factor)::bigint, 0)
           OR e.reported_currency IS DISTINCT FROM e.currency
           OR e.reported_day IS DISTINCT FROM (e.occurred_at AT TIME ZONE 'UTC')::date)
    FOR UPDATE OF e
), counted AS (
    UPDATE revenue_entries e
    SET reported_amount_minor = c.amount, reported_reporting_minor = coalesce(c.converted, 0),
        reported_converted = c.converted IS NOT NULL, reported_currency = c.currency,
        reported_day = c.day
    FROM changed c WHERE e.tenant_id = $1 AND e.entry_id = c.entry_id
), deltas AS (
    SELECT day, currency, kind, amount, coalesce(converted, 0) AS converted,
           (kind = 'sale')::int AS orders, (converted IS NULL)::int AS unconverted
    FROM changed
    UNION ALL
    SELECT old_day, old_currency, kind, -old_amount, -old_converted,
           -(kind = 'sale')::int, -(NOT was_converted)::int
    FROM changed WHERE old_amount IS NOT NULL
)
INSERT INTO daily_revenue AS d (tenant_id, day, currency, gross_minor, refunds_minor,
    cancellations_minor, net_minor, orders, reporting_currency, gross_reporting_minor,
    refunds_reporting_minor, cancellations_reporting_minor, net_reporting_minor,
    unconverted_entries)
SELECT $1, c.day, c.currency,
       coalesce(sum(c.amount) FILTER (WHERE c.kind = 'sale'), 0),
       coalesce(sum(c.amount) FILTER (WHERE c.kind = 'refund'), 0),
       coalesce(sum(c.amount) FILTER (WHERE c.kind = 'cancellation'), 0),
       sum(c.amount),
       sum(c.orders),
       t.reporting_currency,
       coalesce(sum(c.converted) FILTER (WHERE c.kind = 'sale'), 0),
       coalesce(sum(c.converted) FILTER (WHERE c.kind = 'refund'), 0),
       coalesce(sum(c.converted) FILTER (WHERE c.kind = 'cancellation'), 0),
       sum(c.converted),
       sum(c.unconverted)
FROM deltas c JOIN tenants t ON t.tenant_id = $1
GROUP BY c.day, c.currency, t.reporting_currency
ON CONFLICT (tenant_id, day, currency) DO UPDATE SET
    gross_minor = d.gross_minor + EXCLUDED.gross_minor,
    refunds_minor = d.refunds_minor + EXCLUDED.refunds_minor,
    cancellations_minor = d.cancellations_minor + EXCLUDED.cancellations_minor,
    net_minor = d.net_minor + EXCLUDED.net_minor,
    orders = d.orders + EXCLUDED.orders,
    gross_reporting_minor = d.gross_reporting_minor + EXCLUDED.gross_reporting_minor,
    refunds_reporting_minor = d.refunds_reporting_minor + EXCLUDED.refunds_reporting_minor,
    cancellations_reporting_minor =
        d.cancellations_reporting_minor + EXCLUDED.cancellations_reporting_minor,
    net_reporting_minor = d.net_reporting_minor + EXCLUDED.net_reporting_minor,
    unconverted_entries = d.unconverted_entries + EXCLUDED.unconverted_entries,
    refreshed_at = now()
"""


async def refresh(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]
) -> int:
    status = await conn.execute(_APPLY_CHANGES_SQL, tenant_id, order_ids)
    return int(status.rsplit(" ", 1)[-1])


async def rebuild(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    await conn.execute("DELETE FROM daily_revenue WHERE tenant_id = $1", tenant_id)
    await conn.execute(
        "UPDATE revenue_entries SET reported_amount_minor = NULL, reported_reporting_minor = NULL,"
        " reported_converted = NULL, reported_currency = NULL, reported_day = NULL"
        " WHERE tenant_id = $1",
        tenant_id,
    )
    order_ids = [
        r["order_id"]
        for r in await conn.fetch("SELECT order_id FROM orders WHERE tenant_id = $1", tenant_id)
    ]
    return await refresh(conn, tenant_id, order_ids)
