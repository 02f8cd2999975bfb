"""What must hold of a tenant once its chain has converged, however it was interrupted: every
order attributed exactly once and balanced in every model, and reports that equal a rebuild
from the rows and add up to the ledger (nothing counted twice, nothing missed)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg

from fault_system import FaultSystem, poll
from skeldir.domains.reporting import campaign_daily, channel_daily, daily_revenue

_PROGRESS_SQL = """
SELECT (SELECT count(*) FROM orders WHERE tenant_id = %(t)s AND has_snapshot) AS orders,
       (SELECT count(*) FROM order_attributions WHERE tenant_id = %(t)s) AS attributed,
       (SELECT count(*) FROM pending_orders WHERE tenant_id = %(t)s) AS pending,
       (SELECT count(*) FROM report_dirty_orders WHERE tenant_id = %(t)s) AS dirty
"""


def progress(system: FaultSystem, tenant_id: uuid.UUID) -> dict[str, int]:
    with system.owner() as conn:
        cursor = conn.execute(_PROGRESS_SQL, {"t": tenant_id})
        return dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))


def wait_until_attributed(system: FaultSystem, tenant_id: uuid.UUID, orders: int,
                          timeout: float) -> None:
    """Poll until `orders` orders are attributed, none pending, and the reports refreshed."""
    expected = {"orders": orders, "attributed": orders, "pending": 0, "dirty": 0}
    poll(f"{orders} orders attributed and reported",
         lambda: progress(system, tenant_id) == expected, timeout,
         lambda: f"progress {progress(system, tenant_id)}, expected {expected}\n{system.logs()}")


_DAILY_CHANNEL_SQL = """
SELECT model, day, currency, channel, revenue_minor, refunds_minor, net_minor, orders
FROM channel_daily WHERE tenant_id = $1
"""
_DAILY_CAMPAIGN_SQL = """
SELECT model, day, currency, channel, platform, campaign_id, utm_campaign, adset_id, ad_id,
       revenue_minor, refunds_minor, net_minor, orders_micro, new_customers_micro,
       new_customer_net_minor
FROM campaign_daily WHERE tenant_id = $1
"""
_DAILY_REVENUE_SQL = """
SELECT day, currency, gross_minor, refunds_minor, cancellations_minor, net_minor, orders,
       gross_reporting_minor, net_reporting_minor, unconverted_entries
FROM daily_revenue WHERE tenant_id = $1
"""


def _figures(rows, key_columns: int) -> dict[tuple, tuple]:
    """Rows as key -> figures, leaving out rows whose figures are all zero (a rebuild has none)."""
    result = {}
    for row in rows:
        values = tuple(row.values())
        key, figures = values[:key_columns], values[key_columns:]
        assert key not in result, f"two rows for {key}"
        if any(figures):
            result[key] = figures
    return result


async def _check(owner_url: str, tenant_id: uuid.UUID) -> dict[str, int]:
    conn = await asyncpg.connect(owner_url)
    transaction = conn.transaction()
    await transaction.start()
    try:
        orders = [r["order_id"] for r in await conn.fetch(
            "SELECT order_id FROM orders WHERE tenant_id = $1 AND has_snapshot", tenant_id)]
        rows = await conn.fetch(
            "SELECT order_id, models FROM order_attributions WHERE tenant_id = $1", tenant_id)
        assert Counter(r["order_id"] for r in rows) == Counter(orders), "one row per order"

        ledger = {r["order_id"]: r["total"] for r in await conn.fetch(
            "SELECT order_id, sum(amount_minor)::bigint AS total FROM revenue_entries"
            " WHERE tenant_id = $1 GROUP BY order_id", tenant_id)}
        unbooked = [o for o in orders if o not in ledger]
        assert not unbooked, f"{len(unbooked)} orders have no revenue entry, e.g. {unbooked[:3]}"
        summary = await conn.fetch(
            "SELECT order_id, model, revenue_cents, allocated_cents, is_balanced"
            " FROM allocation_summary WHERE tenant_id = $1", tenant_id)
        pairs = Counter((r["order_id"], r["model"]) for r in summary)
        assert pairs == Counter((r["order_id"], m) for r in rows for m in r["models"]), \
            "one summary row per order and model"
        unbalanced = [dict(r) for r in summary if not r["is_balanced"]
                      or not r["allocated_cents"] == r["revenue_cents"] == ledger[r["order_id"]]]
        assert not unbalanced, f"{len(unbalanced)} unbalanced, e.g. {unbalanced[:3]}"

        kept_channels = _figures(await conn.fetch(_DAILY_CHANNEL_SQL, tenant_id), 4)
        kept_revenue = _figures(await conn.fetch(_DAILY_REVENUE_SQL, tenant_id), 2)
        kept_campaigns = _figures(await conn.fetch(_DAILY_CAMPAIGN_SQL, tenant_id), 9)
        await channel_daily.rebuild(conn, tenant_id)
        await campaign_daily.rebuild(conn, tenant_id)
        await daily_revenue.rebuild(conn, tenant_id)
        assert kept_channels == _figures(await conn.fetch(_DAILY_CHANNEL_SQL, tenant_id), 4), \
            "channel_daily differs from a rebuild"
        assert kept_campaigns == _figures(await conn.fetch(_DAILY_CAMPAIGN_SQL, tenant_id), 9), \
            "campaign_daily differs from a rebuild"
        assert kept_revenue == _figures(await conn.fetch(_DAILY_REVENUE_SQL, tenant_id), 2), \
            "daily_revenue differs from a rebuild"

        total = sum(ledger.values())
        sales = await conn.fetchrow(
            "SELECT count(*) AS entries, coalesce(sum(amount_minor), 0)::bigint AS amount"
            " FROM revenue_entries WHERE tenant_id = $1 AND kind = 'sale'", tenant_id)
        # (net, gross, orders) of the daily revenue report, summed over days.
        reported = tuple(sum(v[i] for v in kept_revenue.values()) for i in (3, 0, 4))
        assert reported == (total, sales["amount"], sales["entries"]), \
            f"daily_revenue (net, gross, orders) {reported} vs the ledger"
        models = {m for r in rows for m in r["models"]}
        credited = dict.fromkeys(models, 0)
        for (model, *_), figures in kept_channels.items():
            credited[model] += figures[2]
        assert credited == dict.fromkeys(models, total), \
            f"channel_daily net per model {credited} vs the ledger's {total}"
        by_campaign = dict.fromkeys(models, 0)
        for (model, *_), figures in kept_campaigns.items():
            by_campaign[model] += figures[2]
        assert by_campaign == dict.fromkeys(models, total), \
            f"campaign_daily net per model {by_campaign} vs the ledger's {total}"
        return {"orders": len(orders), "models": len(models), "net_minor": total,
                "channel_rows": len(kept_channels)}
    finally:
        await transaction.rollback()
        await conn.close()


def assert_attributed_exactly_once(system: FaultSystem, tenant_id: uuid.UUID) -> dict[str, int]:
    try:
        return asyncio.run(_check(system.settings.owner_database_url, tenant_id))
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{system.logs()}") from None
