"""The recompute's change to the daily channel report (`channel_daily`).

A batch adds its orders' new credits and takes back what their previous rows added, and writes
the difference in the same transaction as the rows themselves, so the report and the rows never
disagree. The table is reporting's (`domains/reporting/channel_daily.py` rebuilds it and the
reads read it); it is written here because attribution may not import reporting
(docs/architecture.md).
"""

from __future__ import annotations

import uuid
from datetime import date

import asyncpg
import numpy as np

from skeldir.domains.attribution.batch_arrays import PG_EPOCH_DAY
from skeldir.domains.attribution.packing import ChannelDayChanges, unpack

# What the batch's orders added to the report before (to take it back).
_PREVIOUS_SQL = """
SELECT a.day - date '2000-01-01' AS day, a.currency, array_to_string(a.models, ',') AS models,
       array_to_string(a.channels, ',') AS channels, a.credits
FROM attribution_batch b JOIN order_attributions a ON a.tenant_id = $1 AND a.order_id = b.order_id
WHERE b.has_snapshot
"""

_CHANNEL_DAILY_SQL = """
INSERT INTO channel_daily AS c (tenant_id, day, currency, model, channel, revenue_minor,
    refunds_minor, net_minor, orders, refreshed_at)
SELECT $1, v.day, v.currency, v.model, v.channel, v.revenue, v.refunds, v.net, v.orders, now()
FROM unnest($2::date[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bigint[])
     AS v(day, currency, model, channel, revenue, refunds, net, orders)
ON CONFLICT (tenant_id, model, day, currency, channel) DO UPDATE SET
    revenue_minor = c.revenue_minor + EXCLUDED.revenue_minor,
    refunds_minor = c.refunds_minor + EXCLUDED.refunds_minor,
    net_minor = c.net_minor + EXCLUDED.net_minor,
    orders = c.orders + EXCLUDED.orders,
    refreshed_at = EXCLUDED.refreshed_at
"""


async def take_back_previous(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, changes: ChannelDayChanges
) -> None:
    """Subtract what the orders' previous rows added to the report (read before the rows are
    replaced)."""
    previous = await conn.fetch(_PREVIOUS_SQL, tenant_id)
    if not previous:
        return
    for models in {r["models"] for r in previous}:
        rows = [r for r in previous if r["models"] == models]
        model_names = models.split(",")
        currencies = sorted({r["currency"] for r in rows})
        group_of = np.array(
            [r["day"] * 1024 + currencies.index(r["currency"]) for r in rows], dtype=np.int64
        )
        # Rows grouped by their channel list, so each list is split once, not once per row.
        lists, list_of = np.unique([r["channels"] for r in rows], return_inverse=True)
        names = sorted({name for joined in lists.tolist() for name in joined.split(",")})
        codes = [np.array([names.index(n) for n in joined.split(",")]) for joined in lists.tolist()]
        by_list = np.argsort(list_of, kind="stable")
        credits = b"".join(rows[i]["credits"] for i in by_list.tolist())
        widths = np.array([len(c) for c in codes])[list_of[by_list]]
        pair_channel = np.concatenate(
            [np.tile(codes[k], int((list_of == k).sum())) for k in range(len(lists))]
        )
        group_keys, group_index = np.unique(group_of[by_list], return_inverse=True)
        groups = [
            (date.fromordinal(PG_EPOCH_DAY + int(key) // 1024), currencies[int(key) % 1024])
            for key in group_keys.tolist()
        ]
        changes.add(
            groups,
            np.repeat(group_index, widths),
            pair_channel,
            names,
            model_names,
            unpack(credits, len(model_names), len(pair_channel)),
            -1,
        )


async def write_changes(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, changes: ChannelDayChanges
) -> None:
    """Add the batch's changes to the report."""
    report = changes.rows()
    if report:
        await conn.execute(
            _CHANNEL_DAILY_SQL, tenant_id, *(list(column) for column in zip(*report, strict=True))
        )
