"""Exchange rates: load a CSV of daily rates, and re-attribute the orders they change.

The CSV has a header `date,base,quote,rate` (rate: units of quote per unit of base, a
decimal string). Loading is idempotent: a (date, base, quote) loaded again takes the new rate.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import psycopg

from skeldir.base import money

_RATE = re.compile(r"^\d{1,12}(\.\d{1,12})?$")


class RateFileError(ValueError):
    pass


@dataclass(frozen=True)
class Rate:
    day: date
    base: str
    quote: str
    rate: Decimal


def read_rates(path: Path) -> list[Rate]:
    rates = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or {"date", "base", "quote", "rate"} - set(reader.fieldnames):
            raise RateFileError("the header must be date,base,quote,rate")
        for line, row in enumerate(reader, start=2):
            try:
                day = date.fromisoformat(row["date"].strip())
                base, quote = row["base"].strip().upper(), row["quote"].strip().upper()
                money.exponent(base)
                money.exponent(quote)
                text = row["rate"].strip()
                if not _RATE.match(text) or Decimal(text) <= 0:
                    raise ValueError("rate")
            except (ValueError, InvalidOperation, money.MoneyError, AttributeError) as exc:
                raise RateFileError(
                    f"line {line}: not a valid date, currency pair and positive rate"
                ) from exc
            if base == quote:
                raise RateFileError(f"line {line}: base and quote are the same currency")
            rates.append(Rate(day, base, quote, Decimal(text)))
    return rates


def load_rates(conn: psycopg.Connection, rates: list[Rate]) -> dict[str, int]:
    """Upsert the rates and mark pending every order a loaded pair-day changes: those with no
    rate yet, and those stamped with another rate (a corrected rate moves the reports by
    exactly the difference once they are recomputed)."""
    with conn.transaction():
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO fx_rates (day, base, quote, rate) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (day, base, quote) DO UPDATE SET rate = EXCLUDED.rate, loaded_at = now()",
                [(r.day, r.base, r.quote, r.rate) for r in rates],
            )
        # Orders across every tenant: the owner maintains market data for all of them. Chosen
        # from the orders, not from their attributions: an order whose first attribution a
        # batch is writing now (without this rate) has no committed attribution to find, and
        # its mark, raised here, makes that batch leave it pending.
        marked = conn.execute(
            "SELECT coalesce(sum(mark_orders_pending(s.tenant_id, s.order_ids)), 0) FROM ("
            " SELECT o.tenant_id, array_agg(o.order_id) AS order_ids FROM orders o"
            " JOIN tenants t ON t.tenant_id = o.tenant_id"
            " JOIN unnest(%s::date[], %s::text[], %s::text[], %s::numeric[])"
            "   AS r(day, base, quote, rate)"
            "   ON o.currency = r.base AND t.reporting_currency = r.quote"
            "  AND (o.ordered_at AT TIME ZONE 'UTC')::date = r.day"
            " LEFT JOIN order_attributions a"
            "   ON a.tenant_id = o.tenant_id AND a.order_id = o.order_id"
            " WHERE o.has_snapshot"
            "   AND (a.order_id IS NULL OR a.fx_factor IS NULL OR a.fx_rate IS DISTINCT FROM r.rate)"
            " GROUP BY o.tenant_id) AS s",
            (
                [r.day for r in rates],
                [r.base for r in rates],
                [r.quote for r in rates],
                [r.rate for r in rates],
            ),
        ).fetchone()[0]
    return {"rates": len(rates), "orders_marked_pending": marked}
