"""The channel_daily report: revenue, refunds, net and orders credited per (order day, currency,
model, channel).

The recompute keeps it: each batch adds its orders' new credits and takes back their previous
ones in the same transaction as the attribution rows (attribution.channel_daily_projection), so
the report and the rows never disagree and no refresh is needed. `rebuild` recomputes it from
the rows.
"""

from __future__ import annotations

import uuid

import asyncpg

NAME = "channel_daily"

_REBUILD_SQL = """
INSERT INTO channel_daily (tenant_id, model, day, currency, channel, revenue_minor, refunds_minor,
                           net_minor, orders)
SELECT a.tenant_id, m.model, a.day, a.currency, c.channel, sum(v.gross), sum(v.gross - v.net),
       sum(v.net), count(*) FILTER (WHERE v.gross <> 0)
FROM order_attributions a
CROSS JOIN LATERAL unnest(a.models) WITH ORDINALITY AS m(model, model_index)
CROSS JOIN LATERAL unnest(a.channels) WITH ORDINALITY AS c(channel, channel_index)
CROSS JOIN LATERAL (
    SELECT credit_minor(a.credits, ((c.channel_index::integer - 1) * 2) * cardinality(a.models)
                                   + m.model_index::integer - 1) AS net,
           credit_minor(a.credits, ((c.channel_index::integer - 1) * 2 + 1) * cardinality(a.models)
                                   + m.model_index::integer - 1) AS gross
) v
WHERE a.tenant_id = $1
GROUP BY a.tenant_id, m.model, a.day, a.currency, c.channel
"""


async def rebuild(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    await conn.execute("DELETE FROM channel_daily WHERE tenant_id = $1", tenant_id)
    status = await conn.execute(_REBUILD_SQL, tenant_id)
    return int(status.rsplit(" ", 1)[-1])
