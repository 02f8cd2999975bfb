"""Read queries behind the reports API; every one runs inside a tenant transaction."""

from __future__ import annotations

import asyncpg

from skeldir.domains.attribution.packing import unpack


class AmbiguousOrder(LookupError):
    """An order id that names orders of several stores (WooCommerce numbers each from 1)."""

    def __init__(self, stores: list[str]) -> None:
        super().__init__(f"the order id names orders of {len(stores)} stores")
        self.stores = stores


async def order_attribution(
    conn: asyncpg.Connection, provider: str, external_order_id: str, store: str | None = None
) -> dict | None:
    """One order explained; `store` (a source id) names the store where the platform numbers
    orders per store, and may be left out while only one store has the id."""
    candidates = await conn.fetch(
        "SELECT order_id, store FROM orders WHERE provider = $1 AND external_order_id = $2"
        " AND ($3::text IS NULL OR store = $3) ORDER BY store LIMIT 100",
        provider,
        external_order_id,
        store,
    )
    if not candidates:
        return None
    if len(candidates) > 1:
        raise AmbiguousOrder([c["store"] for c in candidates])
    order = await conn.fetchrow(
        "SELECT o.order_id, o.provider, o.store, o.external_order_id, o.currency, o.total_minor,"
        " o.presentment_currency, o.presentment_total_minor, o.ordered_at, o.version,"
        " o.has_snapshot, o.cancelled_at, a.reporting_currency, a.fx_rate, a.fx_factor,"
        " coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'sale'), 0)::bigint AS gross,"
        " coalesce(-sum(e.amount_minor) FILTER (WHERE e.kind = 'refund'), 0)::bigint AS refunded,"
        " coalesce(-sum(e.amount_minor) FILTER (WHERE e.kind = 'cancellation'), 0)::bigint"
        "   AS cancelled,"
        " sum(round(e.amount_minor * a.fx_factor))::bigint AS net_reporting,"
        " EXISTS (SELECT 1 FROM report_dirty_orders d WHERE d.tenant_id = o.tenant_id"
        "         AND d.order_id = o.order_id) AS report_dirty,"
        " EXISTS (SELECT 1 FROM pending_orders p WHERE p.tenant_id = o.tenant_id"
        "         AND p.order_id = o.order_id) AS pending"
        " FROM orders o LEFT JOIN revenue_entries e USING (tenant_id, order_id)"
        " LEFT JOIN order_attributions a USING (tenant_id, order_id)"
        " WHERE o.order_id = $1"
        " GROUP BY o.tenant_id, o.order_id, a.tenant_id, a.order_id",
        candidates[0]["order_id"],
    )
    row = await conn.fetchrow(
        "SELECT models, model_versions, revenue_minor, channels, credits, computed_at"
        " FROM order_attributions WHERE order_id = $1",
        order["order_id"],
    )
    models = {}
    if row is not None:
        credits = unpack(row["credits"], len(row["models"]), len(row["channels"]))
        for index, model in enumerate(row["models"]):
            net, gross = credits[:, 0, index].tolist(), credits[:, 1, index].tolist()
            allocated = sum(net)
            credited = [c for c in range(len(row["channels"])) if net[c] or gross[c]] or [0]
            models[model] = {
                "model_version": row["model_versions"][index],
                "allocated_cents": allocated,
                "is_balanced": allocated == row["revenue_minor"],
                "drift_cents": allocated - row["revenue_minor"],
                # Every report counts the order as it now stands.
                "report_refreshed": not order["report_dirty"],
                "allocations": [
                    {
                        "channel": row["channels"][c],
                        "cents": net[c],
                        "gross_cents": gross[c],
                        "refunded_cents": gross[c] - net[c],
                    }
                    for c in credited
                ],
                "computed_at": row["computed_at"].isoformat(),
            }
    net = order["gross"] - order["refunded"] - order["cancelled"]
    factor = order["fx_factor"]
    return {
        "order_id": order["order_id"],
        "provider": order["provider"],
        "external_order_id": order["external_order_id"],
        "store": order["store"] or None,
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

