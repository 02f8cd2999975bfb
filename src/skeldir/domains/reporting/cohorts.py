"""The cohort report: customers acquired per period, what they bring in each later period (the
LTV curve) and how many came back; optionally split by the channel that acquired them.

Definitions (docs/customers.md has them in full):
- A customer is an order's customer_key; it is acquired by its first order (orders.
  is_new_customer), in the period (UTC month, or ISO week from Monday) of that order's time.
- The window [from, to] (UTC days) bounds both: customers acquired in it, and their orders
  placed in it. An order's net revenue (sales less refunds and cancellations, whenever they
  happen) counts in the period of the order's time.
- Revenue is in the reporting currency, each entry converted at the rate stamped on its order
  (as the daily revenue report does); an order without a known rate is counted, its revenue
  is not: a cell with such an order says null and how many, never a 1:1 guess.
- The acquiring channel, under a model, is the channel the model credits the most of the
  first order's sales (ties: the earlier channel in the fixed channel order); under
  `first_touch` that is the channel of the first order's first touch. A first order without
  credits under the model yet is `unattributed`.
- Orders without a customer are counted apart, per period, never guessed into a cohort.

Computed on read: the cost follows the window's customers and orders. Cohorts are at most a
year of periods times the channels, so the rows are few; they are paged like every report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import asyncpg

PERIODS = ("month", "week")
UNATTRIBUTED = "unattributed"

# Per order: its factor into the reporting currency (1 in the reporting currency itself, else
# the rate stamped on its attribution, else unknown) and its net in reporting minor units.
_VALUED = """
    SELECT w.*, CASE WHEN factor IS NULL THEN NULL ELSE
               coalesce((SELECT sum(round(e.amount_minor * factor)) FROM revenue_entries e
                         WHERE e.tenant_id = w.tenant_id AND e.order_id = w.order_id), 0)
           END::bigint AS net
    FROM (SELECT w.*, CASE WHEN w.currency = t.reporting_currency THEN 1::numeric
                           ELSE a.fx_factor END AS factor
          FROM {orders} w
          CROSS JOIN tenants t
          LEFT JOIN order_attributions a ON a.tenant_id = w.tenant_id
               AND a.order_id = w.order_id AND a.currency = w.currency
               AND a.reporting_currency = t.reporting_currency) w
"""

# $1 period ('month' or 'week'), $2 and $3 the window's bounds as times (the end excluded),
# $4 the model naming the acquiring channel (NULL: no split).
_COHORTS_SQL = f"""
WITH acquired AS (
    SELECT c.tenant_id, c.customer_key, c.first_order_id,
           date_trunc($1, c.first_ordered_at AT TIME ZONE 'UTC')::date AS cohort
    FROM customers c
    WHERE c.first_ordered_at >= $2 AND c.first_ordered_at < $3
), channelled AS (
    SELECT q.*, CASE WHEN $4::text IS NULL THEN ''
                     ELSE coalesce(ch.channel, '{UNATTRIBUTED}') END AS channel
    FROM acquired q
    LEFT JOIN LATERAL (
        SELECT a.channels[i] AS channel
        FROM order_attributions a CROSS JOIN LATERAL generate_subscripts(a.channels, 1) AS i
        WHERE $4::text IS NOT NULL AND a.tenant_id = q.tenant_id
          AND a.order_id = q.first_order_id AND $4 = ANY (a.models)
        -- The gross (sales) credit of channel i under the model: see packing.py's layout.
        ORDER BY credit_minor(a.credits, ((i - 1) * 2 + 1) * cardinality(a.models)
                                         + array_position(a.models, $4) - 1) DESC, i
        LIMIT 1) ch ON true
), customer_orders AS (
    SELECT q.tenant_id, q.cohort, q.channel, q.customer_key, o.order_id, o.currency,
           date_trunc($1, o.ordered_at AT TIME ZONE 'UTC')::date AS period
    FROM channelled q
    JOIN orders o ON o.tenant_id = q.tenant_id AND o.customer_key = q.customer_key
    WHERE o.ordered_at < $3
), valued AS ({_VALUED.format(orders="customer_orders")}
), sizes AS (
    SELECT cohort, channel, count(*) AS customers,
           count(*) FILTER (WHERE orders >= 2) AS repeat_customers
    FROM (SELECT cohort, channel, customer_key, count(*) AS orders
          FROM customer_orders GROUP BY cohort, channel, customer_key) per_customer
    GROUP BY cohort, channel
)
SELECT v.cohort, v.channel, v.period, count(DISTINCT v.customer_key) AS active_customers,
       count(*) AS orders, coalesce(sum(v.net), 0)::bigint AS revenue,
       count(*) FILTER (WHERE v.factor IS NULL) AS unconverted,
       s.customers, s.repeat_customers
FROM valued v JOIN sizes s USING (cohort, channel)
GROUP BY v.cohort, v.channel, v.period, s.customers, s.repeat_customers
ORDER BY v.cohort, v.channel, v.period
"""

_NO_CUSTOMER_SQL = f"""
WITH anonymous AS (
    SELECT o.tenant_id, o.order_id, o.currency,
           date_trunc($1, o.ordered_at AT TIME ZONE 'UTC')::date AS period
    FROM orders o
    WHERE o.has_snapshot AND o.customer_key IS NULL AND o.ordered_at >= $2 AND o.ordered_at < $3
), valued AS ({_VALUED.format(orders="anonymous")})
SELECT period, count(*) AS orders, coalesce(sum(net), 0)::bigint AS revenue,
       count(*) FILTER (WHERE factor IS NULL) AS unconverted
FROM valued GROUP BY period ORDER BY period
"""


def period_start(day: date, period: str) -> date:
    """The first day of the period holding `day`: the 1st of its month, or its ISO week's
    Monday (as PostgreSQL's date_trunc)."""
    if period == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())


def next_period(start: date, period: str) -> date:
    if period == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def periods_between(first: date, last: date, period: str) -> list[date]:
    """Every period start from the period of `first` to that of `last`, both included."""
    starts, current, end = [], period_start(first, period), period_start(last, period)
    while current <= end:
        starts.append(current)
        current = next_period(current, period)
    return starts


def _money(revenue: int, unconverted: int) -> int | None:
    # An order without a rate leaves the sum unknown: null, never a partial or 1:1 figure.
    return None if unconverted else revenue


def cohort_rows(cells: Iterable[dict], period: str, end: date, split: bool) -> list[dict]:
    """Cells (cohort, channel, period, active_customers, orders, revenue, unconverted,
    customers, repeat_customers), sorted by cohort and channel, as one row per cohort and
    channel with its curve: every period from the cohort's to the window's last."""
    rows: dict[tuple[date, str], dict] = {}
    for cell in cells:
        key = (cell["cohort"], cell["channel"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "cohort": cell["cohort"],
                "channel": cell["channel"] if split else None,
                "customers": cell["customers"],
                "repeat_customers": cell["repeat_customers"],
                "repeat_rate": round(cell["repeat_customers"] / cell["customers"], 4),
                "_cells": {},
            }
        row["_cells"][cell["period"]] = cell
    for row in rows.values():
        cells_of = row.pop("_cells")
        curve, total, unconverted = [], 0, 0
        for offset, start in enumerate(periods_between(row["cohort"], end, period)):
            cell = cells_of.get(start, {"active_customers": 0, "orders": 0, "revenue": 0,
                                        "unconverted": 0})
            total += cell["revenue"]
            unconverted += cell["unconverted"]
            curve.append({
                "offset": offset,
                "start": start,
                "customers": cell["active_customers"],
                "orders": cell["orders"],
                "revenue_cents": _money(cell["revenue"], cell["unconverted"]),
                "cumulative_revenue_cents": _money(total, unconverted),
                "unconverted_orders": cell["unconverted"],
            })
        row["periods"] = curve
        row["revenue_cents"] = _money(total, unconverted)
        row["unconverted_orders"] = unconverted
    return list(rows.values())


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (datetime(start.year, start.month, start.day, tzinfo=UTC),
            datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1))


async def cohorts(
    conn: asyncpg.Connection, period: str, start: date, end: date, model: str | None
) -> list[dict]:
    """Every cohort row of the window, in (cohort, channel) order; split by the acquiring
    channel under `model` when one is given."""
    cells = await conn.fetch(_COHORTS_SQL, period, *_bounds(start, end), model)
    rows = cohort_rows((dict(c) for c in cells), period, end, split=model is not None)
    # The keyset compares in Python: sort as Python does, whatever the database's collation.
    return sorted(rows, key=lambda r: (r["cohort"], r["channel"] or ""))


async def no_customer(conn: asyncpg.Connection, period: str, start: date, end: date) -> dict:
    """The window's orders without a customer, per period: counted apart, never in a cohort."""
    found = {r["period"]: r for r in await conn.fetch(_NO_CUSTOMER_SQL, period,
                                                        *_bounds(start, end))}
    periods, orders, revenue, unconverted = [], 0, 0, 0
    for first in periods_between(start, end, period):
        r = found.get(first, {"orders": 0, "revenue": 0, "unconverted": 0})
        orders, revenue, unconverted = (orders + r["orders"], revenue + r["revenue"],
                                        unconverted + r["unconverted"])
        periods.append({"start": first, "orders": r["orders"],
                        "revenue_cents": _money(r["revenue"], r["unconverted"]),
                        "unconverted_orders": r["unconverted"]})
    return {"orders": orders, "revenue_cents": _money(revenue, unconverted),
            "unconverted_orders": unconverted, "periods": periods}
