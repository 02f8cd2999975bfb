"""Read queries behind the reports API; every one runs inside a tenant transaction."""

from __future__ import annotations

import asyncpg


async def order_attribution(
    conn: asyncpg.Connection, provider: str, external_order_id: str
) -> dict | None:
    order = await conn.fetchrow(
        "SELECT o.order_id, o.provider, o.external_order_id, o.currency, o.total_minor,"
        " o.presentment_currency, o.presentment_total_minor, o.ordered_at, o.version,"
        " o.has_snapshot, o.cancelled_at, o.reporting_currency, o.fx_rate, o.fx_factor,"
        " coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'sale'), 0)::bigint AS gross,"
        " coalesce(-sum(e.amount_minor) FILTER (WHERE e.kind = 'refund'), 0)::bigint AS refunded,"
        " coalesce(-sum(e.amount_minor) FILTER (WHERE e.kind = 'cancellation'), 0)::bigint"
        "   AS cancelled,"
        " sum(round(e.amount_minor * o.fx_factor))::bigint AS net_reporting,"
        " EXISTS (SELECT 1 FROM pending_orders p WHERE p.tenant_id = o.tenant_id"
        "         AND p.order_id = o.order_id) AS pending"
        " FROM orders o LEFT JOIN revenue_entries e USING (tenant_id, order_id)"
        " WHERE o.provider = $1 AND o.external_order_id = $2 GROUP BY o.tenant_id, o.order_id",
        provider,
        external_order_id,
    )
    if order is None:
        return None
    rows = await conn.fetch(
        "SELECT a.model, a.model_version, a.revenue_minor, a.channels, a.credits_minor,"
        " a.gross_credits_minor,"
        " a.computed_at, s.allocated_cents, s.is_balanced, s.drift_cents"
        " FROM attribution_allocations a LEFT JOIN allocation_summary s"
        "   USING (tenant_id, order_id, model)"
        " WHERE a.order_id = $1 ORDER BY a.model",
        order["order_id"],
    )
    models = {}
    for row in rows:
        allocated = sum(row["credits_minor"])
        models[row["model"]] = {
            "model_version": row["model_version"],
            "allocated_cents": allocated,
            "is_balanced": allocated == row["revenue_minor"],
            "drift_cents": allocated - row["revenue_minor"],
            "report_refreshed": row["allocated_cents"] is not None,
            "allocations": [
                {
                    "channel": channel,
                    "cents": cents,
                    "gross_cents": gross,
                    "refunded_cents": gross - cents,
                }
                for channel, cents, gross in zip(
                    row["channels"],
                    row["credits_minor"],
                    row["gross_credits_minor"] or row["credits_minor"],
                    strict=True,
                )
            ],
            "computed_at": row["computed_at"].isoformat(),
        }
    net = order["gross"] - order["refunded"] - order["cancelled"]
    factor = order["fx_factor"]
    return {
        "order_id": order["order_id"],
        "provider": order["provider"],
        "external_order_id": order["external_order_id"],
        "order_received": order["has_snapshot"],
        "currency": order["currency"],
        "gross_cents": order["gross"],
        "refunded_cents": order["refunded"],
        "cancelled_cents": order["cancelled"],
        "cancelled_at": order["cancelled_at"].isoformat() if order["cancelled_at"] else None,
        "revenue_cents": net,
        "reporting_currency": order["reporting_currency"],
        "fx_rate": str(order["fx_rate"]) if order["fx_rate"] is not None else None,
        # Never converted 1:1: with no known rate the order stays in its own currency.
        "fx_rate_missing": order["reporting_currency"] is not None and factor is None,
        # Converted entry by entry, as the daily revenue report does, so the two agree.
        "revenue_reporting_cents": order["net_reporting"] if factor is not None else None,
        "presentment_currency": order["presentment_currency"],
        "presentment_total_cents": order["presentment_total_minor"],
        "ordered_at": order["ordered_at"].isoformat() if order["ordered_at"] else None,
        "attribution_pending": order["pending"],
        "models": models,
    }


_CHANNELS_SQL = """
SELECT (o.ordered_at AT TIME ZONE 'UTC')::date AS day, c.channel, a.currency,
       sum(c.gross)::bigint AS revenue, sum(c.gross - c.net)::bigint AS refunds,
       sum(c.net)::bigint AS net, count(DISTINCT a.order_id) FILTER (WHERE c.gross <> 0) AS orders
FROM attribution_allocations a
JOIN orders o ON o.tenant_id = a.tenant_id AND o.order_id = a.order_id
CROSS JOIN LATERAL unnest(a.channels, a.credits_minor,
                          coalesce(a.gross_credits_minor, a.credits_minor)) AS c(channel, net, gross)
WHERE a.model = $1 AND o.ordered_at >= $2 AND o.ordered_at < $3
  AND ($4::text IS NULL OR a.currency = $4)
GROUP BY 1, 2, 3
ORDER BY 1, 3, 2
"""


async def channel_performance(
    conn: asyncpg.Connection, model: str, start, end, currency: str | None
) -> list[dict]:
    """Revenue, refunds, net and orders per day (of the order), channel and currency."""
    rows = await conn.fetch(_CHANNELS_SQL, model, start, end, currency)
    return [
        {
            "day": r["day"].isoformat(),
            "channel": r["channel"],
            "currency": r["currency"],
            "revenue_cents": r["revenue"],
            "refunds_cents": r["refunds"],
            "net_cents": r["net"],
            "orders": r["orders"],
        }
        for r in rows
    ]
