"""An order's stitched path with each touchpoint's credit under every model (for the API)."""

from __future__ import annotations

import uuid

import asyncpg

from skeldir.domains.attribution.paths import order_path
from skeldir.domains.attribution.tenant_attribution import load_tenant_attribution, path_credits

_ORDER_SQL = """
SELECT o.ordered_at, o.hints, o.has_snapshot,
       (SELECT a.visitor_id FROM order_attributions a
        WHERE a.tenant_id = o.tenant_id AND a.order_id = o.order_id) AS stitched_visitor_id,
       coalesce(array_agg(e.amount_minor ORDER BY e.kind <> 'sale', e.occurred_at,
                          e.external_entry_id) FILTER (WHERE e.entry_id IS NOT NULL), '{}')
           AS amounts,
       coalesce(array_agg(e.kind = 'sale' ORDER BY e.kind <> 'sale', e.occurred_at,
                          e.external_entry_id) FILTER (WHERE e.entry_id IS NOT NULL), '{}')
           AS is_sale
FROM orders o LEFT JOIN revenue_entries e ON e.tenant_id = o.tenant_id AND e.order_id = o.order_id
WHERE o.tenant_id = $1 AND o.order_id = $2
GROUP BY o.tenant_id, o.order_id
"""


async def explained_path(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, order_id: uuid.UUID
) -> list[dict]:
    order = await conn.fetchrow(_ORDER_SQL, tenant_id, order_id)
    if order is None or not order["has_snapshot"]:
        return []
    tenant = await load_tenant_attribution(conn, tenant_id)
    touchpoints = []
    if order["stitched_visitor_id"]:
        touchpoints = [
            (r["touchpoint_id"], r["occurred_at"], r["hints"])
            for r in await conn.fetch(
                "SELECT touchpoint_id, occurred_at, hints FROM touchpoints WHERE tenant_id = $1"
                " AND visitor_id = $2 AND is_visit AND occurred_at BETWEEN $3 AND $4",
                tenant_id,
                order["stitched_visitor_id"],
                order["ordered_at"] - tenant.lookback,
                order["ordered_at"],
            )
        ]
    path = order_path(
        touchpoints, order["hints"], order["ordered_at"], tenant.classify, tenant.lookback
    )
    credits = path_credits(path, order["ordered_at"], order["amounts"], order["is_sale"], tenant)
    return [
        {
            "touchpoint_id": touchpoint.touchpoint_id,
            "occurred_at": touchpoint.occurred_at.isoformat(),
            "channel": touchpoint.channel,
            # The order's own landing page stands in when no visit was stitched to it.
            "from_order": touchpoint.touchpoint_id is None,
            "credits": {model: net[index] for model, (net, _gross) in credits.items()},
        }
        for index, touchpoint in enumerate(path)
    ]
