"""The campaign_daily report: every model's credits per (order day, currency, channel, platform,
campaign id, utm_campaign, ad set, ad), with fractional orders and new customers in millionths.

The recompute keeps it, as it keeps channel_daily (attribution.campaign_daily_projection);
`rebuild` recomputes it from the attribution rows, each counted with the new-customer flag it
was attributed with.
"""

from __future__ import annotations

import uuid

import asyncpg

NAME = "campaign_daily"

_REBUILD_SQL = """
INSERT INTO campaign_daily (tenant_id, model, day, currency, channel, platform, campaign_id,
                            utm_campaign, adset_id, ad_id, revenue_minor, refunds_minor,
                            net_minor, orders_micro, new_customers_micro, new_customer_net_minor)
SELECT a.tenant_id, m.model, a.day, a.currency, k[1], k[2], k[3], k[4], k[5], k[6],
       sum(v.gross), sum(v.gross - v.net), sum(v.net), sum(v.units),
       coalesce(sum(v.units) FILTER (WHERE a.is_new_customer), 0),
       coalesce(sum(v.net) FILTER (WHERE a.is_new_customer), 0)
FROM order_attributions a
CROSS JOIN LATERAL unnest(a.models) WITH ORDINALITY AS m(model, model_index)
CROSS JOIN LATERAL unnest(a.grains) WITH ORDINALITY AS g(grain, grain_index)
CROSS JOIN LATERAL (
    SELECT string_to_array(g.grain, E'\\x1f') AS k,
           ((g.grain_index::integer - 1) * 3) * cardinality(a.models)
               + m.model_index::integer - 1 AS at
) p
CROSS JOIN LATERAL (
    SELECT credit_minor(a.grain_credits, p.at) AS net,
           credit_minor(a.grain_credits, p.at + cardinality(a.models)) AS gross,
           credit_minor(a.grain_credits, p.at + 2 * cardinality(a.models)) AS units
) v
WHERE a.tenant_id = $1 AND a.grains IS NOT NULL
GROUP BY a.tenant_id, m.model, a.day, a.currency, k[1], k[2], k[3], k[4], k[5], k[6]
"""


async def rebuild(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    await conn.execute("DELETE FROM campaign_daily WHERE tenant_id = $1", tenant_id)
    status = await conn.execute(_REBUILD_SQL, tenant_id)
    return int(status.rsplit(" ", 1)[-1])
