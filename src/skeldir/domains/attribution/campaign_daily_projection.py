"""The recompute's change to the daily campaign report (`campaign_daily`), as
`channel_daily_projection` is to the channel report: a batch adds its orders' new credits per
grain and takes back what their previous rows added, in the same transaction as the rows.

The take-back reads the new-customer flag stored with the previous row, not the order's flag
now: a flag flipped since (an earlier order of the customer arrived) must not change what is
taken back. The table is reporting's (`domains/reporting/campaign_daily.py` rebuilds it).
"""

from __future__ import annotations

import uuid
from datetime import date

import asyncpg
import numpy as np

from skeldir.domains.attribution.batch_arrays import PG_EPOCH_DAY
from skeldir.domains.attribution.campaign_grain import (
    GRAIN_LIST_SEPARATOR,
    CampaignDayChanges,
    unpack_grains,
)

_PREVIOUS_SQL = """
SELECT a.day - date '2000-01-01' AS day, a.currency, array_to_string(a.models, ',') AS models,
       array_to_string(a.grains, E'\\x1e') AS grains, a.grain_credits,
       coalesce(a.is_new_customer, false) AS is_new_customer
FROM attribution_batch b JOIN order_attributions a ON a.tenant_id = $1 AND a.order_id = b.order_id
WHERE b.has_snapshot AND a.grains IS NOT NULL
"""

_CAMPAIGN_DAILY_SQL = """
INSERT INTO campaign_daily AS c (tenant_id, day, currency, model, channel, platform, campaign_id,
    utm_campaign, adset_id, ad_id, revenue_minor, refunds_minor, net_minor, orders_micro,
    new_customers_micro, new_customer_net_minor, refreshed_at)
SELECT $1, v.day, v.currency, v.model, v.channel, v.platform, v.campaign_id, v.utm_campaign,
       v.adset_id, v.ad_id, v.revenue, v.refunds, v.net, v.units, v.new_units, v.new_net, now()
FROM unnest($2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[],
            $15::bigint[], $16::bigint[])
     AS v(day, currency, model, channel, platform, campaign_id, utm_campaign, adset_id, ad_id,
          revenue, refunds, net, units, new_units, new_net)
ON CONFLICT (tenant_id, model, day, currency, channel, platform, campaign_id, utm_campaign,
             adset_id, ad_id) DO UPDATE SET
    revenue_minor = c.revenue_minor + EXCLUDED.revenue_minor,
    refunds_minor = c.refunds_minor + EXCLUDED.refunds_minor,
    net_minor = c.net_minor + EXCLUDED.net_minor,
    orders_micro = c.orders_micro + EXCLUDED.orders_micro,
    new_customers_micro = c.new_customers_micro + EXCLUDED.new_customers_micro,
    new_customer_net_minor = c.new_customer_net_minor + EXCLUDED.new_customer_net_minor,
    refreshed_at = EXCLUDED.refreshed_at
"""


async def take_back_previous(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, changes: CampaignDayChanges
) -> None:
    """Subtract what the orders' previous rows added (read before the rows are replaced)."""
    previous = await conn.fetch(_PREVIOUS_SQL, tenant_id)
    for models in {r["models"] for r in previous}:
        rows = [r for r in previous if r["models"] == models]
        model_names = models.split(",")
        keys = sorted({(r["day"], r["currency"]) for r in rows})
        group = {key: i for i, key in enumerate(keys)}
        row_group = np.array([group[(r["day"], r["currency"])] for r in rows], dtype=np.int64)
        # Rows grouped by their grain list, so each list is split once, not once per row.
        lists, list_of = np.unique([r["grains"] for r in rows], return_inverse=True)
        split = [joined.split(GRAIN_LIST_SEPARATOR) for joined in lists.tolist()]
        names = sorted({name for grains in split for name in grains})
        code = {name: i for i, name in enumerate(names)}
        codes = [np.array([code[n] for n in grains], dtype=np.int64) for grains in split]
        by_list = np.argsort(list_of, kind="stable")
        widths = np.array([len(c) for c in codes], dtype=np.int64)[list_of[by_list]]
        changes.add(
            [(date.fromordinal(PG_EPOCH_DAY + day), currency) for day, currency in keys],
            np.repeat(row_group[by_list], widths),
            np.concatenate([codes[list_of[i]] for i in by_list.tolist()]),
            names,
            model_names,
            unpack_grains(b"".join(rows[i]["grain_credits"] for i in by_list.tolist()),
                          len(model_names), int(widths.sum())),
            np.repeat(np.array([r["is_new_customer"] for r in rows], dtype=bool)[by_list], widths),
            -1,
        )


async def write_changes(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, changes: CampaignDayChanges
) -> None:
    """Add the batch's changes to the report."""
    report = changes.rows()
    if report:
        await conn.execute(
            _CAMPAIGN_DAILY_SQL, tenant_id, *(list(column) for column in zip(*report, strict=True))
        )
