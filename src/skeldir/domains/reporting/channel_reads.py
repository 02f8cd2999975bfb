"""Reads of the channel_daily report: rows under one model in (day, currency, channel) order,
totals per channel, and every model's totals side by side.

Every read runs inside a tenant transaction. Rows whose figures are all zero are left out: the
recompute takes credits back by adding negative changes, which can leave a row of zeros behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg

_NOT_ALL_ZERO = "(revenue_minor <> 0 OR refunds_minor <> 0 OR net_minor <> 0 OR orders <> 0)"

# The primary key (tenant_id, model, day, currency, channel) serves both the range and the
# keyset; a LIMIT of NULL is no limit.
_ROWS_SQL = f"""
SELECT day, currency, channel, revenue_minor, refunds_minor, net_minor, orders
FROM channel_daily
WHERE model = $1 AND day BETWEEN $2 AND $3 AND ($4::text IS NULL OR currency = $4)
  AND (day, currency, channel) > ($5::date, $6::char(3), $7::text)
  AND {_NOT_ALL_ZERO}
ORDER BY day, currency, channel
LIMIT $8
"""

_TOTALS_SQL = f"""
SELECT channel, currency, sum(revenue_minor)::bigint AS revenue_minor,
       sum(refunds_minor)::bigint AS refunds_minor, sum(net_minor)::bigint AS net_minor,
       sum(orders)::bigint AS orders
FROM channel_daily
WHERE model = $1 AND day BETWEEN $2 AND $3 AND ($4::text IS NULL OR currency = $4)
  AND {_NOT_ALL_ZERO}
GROUP BY channel, currency
ORDER BY currency, channel
"""

_BY_MODEL_SQL = f"""
SELECT model, channel, currency, sum(revenue_minor)::bigint AS revenue_minor,
       sum(refunds_minor)::bigint AS refunds_minor, sum(net_minor)::bigint AS net_minor,
       sum(orders)::bigint AS orders
FROM channel_daily
WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR currency = $3) AND {_NOT_ALL_ZERO}
GROUP BY model, channel, currency
"""


def _figures(row: asyncpg.Record) -> dict:
    return {
        "revenue_cents": row["revenue_minor"],
        "refunds_cents": row["refunds_minor"],
        "net_cents": row["net_minor"],
        "orders": row["orders"],
    }


async def channel_rows(
    conn: asyncpg.Connection,
    model: str,
    start: date,
    end: date,
    currency: str | None,
    after: tuple[date, str, str] | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Rows after the (day, currency, channel) key `after`, at most `limit` of them."""
    # Any real row sorts after (start, '', ''): currencies and channels are never empty.
    after_day, after_currency, after_channel = after or (start, "", "")
    rows = await conn.fetch(
        _ROWS_SQL, model, start, end, currency, after_day, after_currency, after_channel, limit
    )
    return [
        {"day": r["day"], "currency": r["currency"], "channel": r["channel"], **_figures(r)}
        for r in rows
    ]


async def channel_totals(
    conn: asyncpg.Connection, model: str, start: date, end: date, currency: str | None
) -> list[dict]:
    rows = await conn.fetch(_TOTALS_SQL, model, start, end, currency)
    return [{"channel": r["channel"], "currency": r["currency"], **_figures(r)} for r in rows]


async def model_comparison(
    conn: asyncpg.Connection, start: date, end: date, currency: str | None, known: Sequence[str]
) -> dict:
    rows = await conn.fetch(_BY_MODEL_SQL, start, end, currency)
    return compare_models([dict(r) for r in rows], known)


def compare_models(rows: Sequence[dict], known: Sequence[str]) -> dict:
    """Pivot per-(model, channel, currency) sums into one item per (channel, currency) holding
    every model's figures, and totals per currency and model. Models are those present, in the
    order of `known` (any other after them). A model missing for a channel credited it nothing.

    Every model splits each order's whole revenue, so each currency's totals agree across models
    (unless a model was added during the window: orders attributed before it lack its figures).
    """
    present = {r["model"] for r in rows}
    models = [m for m in known if m in present] + sorted(present.difference(known))
    items: dict[tuple[str, str], dict] = {}
    totals: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (r["currency"], r["channel"])):
        item = items.setdefault(
            (r["channel"], r["currency"]),
            {"channel": r["channel"], "currency": r["currency"]}
            | {field: dict.fromkeys(models, 0) for field in ("net_cents", "orders")},
        )
        item["net_cents"][r["model"]] = r["net_minor"]
        item["orders"][r["model"]] = r["orders"]
        total = totals.setdefault(
            r["currency"],
            {"currency": r["currency"]}
            | {
                field: dict.fromkeys(models, 0)
                for field in ("revenue_cents", "refunds_cents", "net_cents")
            },
        )
        total["revenue_cents"][r["model"]] += r["revenue_minor"]
        total["refunds_cents"][r["model"]] += r["refunds_minor"]
        total["net_cents"][r["model"]] += r["net_minor"]
    return {
        "models": models,
        "items": list(items.values()),
        "totals": [totals[c] for c in sorted(totals)],
    }
