"""Reads of the daily_revenue report in (day, currency) order, a page at a time."""

from __future__ import annotations

from datetime import date

import asyncpg

# The primary key (tenant_id, day, currency) serves both the range and the keyset.
_PAGE_SQL = """
SELECT day, currency, gross_minor, refunds_minor, cancellations_minor, net_minor, orders,
       reporting_currency, gross_reporting_minor, refunds_reporting_minor,
       cancellations_reporting_minor, net_reporting_minor, unconverted_entries
FROM daily_revenue
WHERE day BETWEEN $1 AND $2 AND (day, currency) > ($3::date, $4::char(3))
ORDER BY day, currency
LIMIT $5
"""


async def daily_revenue_rows(
    conn: asyncpg.Connection,
    start: date,
    end: date,
    after: tuple[date, str] | None,
    limit: int,
) -> list[dict]:
    """Rows after the (day, currency) key `after`, at most `limit` of them."""
    # Any real row sorts after (start, ''): a currency is never empty.
    after_day, after_currency = after or (start, "")
    rows = await conn.fetch(_PAGE_SQL, start, end, after_day, after_currency, limit)
    return [_item(r) for r in rows]


def _item(r) -> dict:
    """A row as the API gives it. Its reporting-currency figures are unknown (None) while any
    of its entries has no known rate: a partial sum would read as the real figure (0 before
    any rate is loaded, as if there were no revenue)."""
    known = r["unconverted_entries"] == 0
    return {
        "day": r["day"],
        "currency": r["currency"],
        "gross_cents": r["gross_minor"],
        "refunds_cents": r["refunds_minor"],
        "cancellations_cents": r["cancellations_minor"],
        "net_cents": r["net_minor"],
        "orders": r["orders"],
        "reporting_currency": r["reporting_currency"],
        "gross_reporting_cents": r["gross_reporting_minor"] if known else None,
        "refunds_reporting_cents": r["refunds_reporting_minor"] if known else None,
        "cancellations_reporting_cents": r["cancellations_reporting_minor"] if known else None,
        "net_reporting_cents": r["net_reporting_minor"] if known else None,
        "unconverted_entries": r["unconverted_entries"],
    }
