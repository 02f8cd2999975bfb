"""Reads of the spend ledger in the tenant's reporting currency, a page at a time.

Each row converts at its own day's rate from fx_rates (base: the spend's currency, quote: the
reporting currency), rounded half up to the reporting currency's minor unit, as revenue is.
Spend already in the reporting currency needs no rate. A row whose day has no rate answers
`spend_reporting_cents: None` and says so: never a 1:1 guess, never a silent 0.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import asyncpg

from skeldir.base import money

# The primary key (tenant_id, day, platform, account, campaign, ad set, ad) serves the range
# and the keyset; the rate is one index probe per row.
_PAGE_SQL = """
SELECT s.day, s.platform, s.account_id, s.campaign_id, s.adset_id, s.ad_id, s.campaign_name,
       s.adset_name, s.ad_name, s.currency, s.spend_minor, s.impressions, s.clicks,
       CASE WHEN s.currency = $1 THEN 1::numeric ELSE fx.rate END AS rate
FROM ad_spend s
LEFT JOIN fx_rates fx ON fx.day = s.day AND fx.base = s.currency AND fx.quote = $1
WHERE s.day BETWEEN $2 AND $3
  AND (s.day, s.platform, s.account_id, s.campaign_id, s.adset_id, s.ad_id)
      > ($4::date, $5, $6, $7, $8, $9)
ORDER BY s.day, s.platform, s.account_id, s.campaign_id, s.adset_id, s.ad_id
LIMIT $10
"""

SortKey = tuple[date, str, str, str, str, str]


def to_reporting_minor(spend_minor: int, currency: str, rate: Decimal,
                       reporting_currency: str) -> int:
    """`spend_minor` of `currency` in minor units of the reporting currency at `rate`."""
    factor = rate.scaleb(money.exponent(reporting_currency) - money.exponent(currency))
    return int((spend_minor * factor).to_integral_value(ROUND_HALF_UP))


async def reporting_currency(conn: asyncpg.Connection) -> str:
    """The reporting currency of the tenant in context."""
    return (await conn.fetchval("SELECT reporting_currency FROM tenants")).strip()


async def spend_rows(
    conn: asyncpg.Connection,
    start: date,
    end: date,
    after: SortKey | None,
    limit: int,
) -> list[dict]:
    """The tenant's spend rows from `start` to `end` after the sort key `after`, at most
    `limit` of them, each with its spend in the reporting currency (None without a rate)."""
    reporting = await reporting_currency(conn)
    # Every real row sorts after (start, '', ...): a platform is never empty.
    after_key = after or (start, "", "", "", "", "")
    rows = await conn.fetch(_PAGE_SQL, reporting, start, end, *after_key, limit)
    return [_item(r, reporting) for r in rows]


def _item(r, reporting: str) -> dict:
    rate = r["rate"]
    return {
        "day": r["day"],
        "platform": r["platform"],
        "account_id": r["account_id"],
        "campaign_id": r["campaign_id"],
        "campaign_name": r["campaign_name"],
        "adset_id": r["adset_id"],
        "adset_name": r["adset_name"],
        "ad_id": r["ad_id"],
        "ad_name": r["ad_name"],
        "currency": r["currency"].strip(),
        "spend_cents": r["spend_minor"],
        "impressions": r["impressions"],
        "clicks": r["clicks"],
        "reporting_currency": reporting,
        "spend_reporting_cents": (
            None if rate is None
            else to_reporting_minor(r["spend_minor"], r["currency"].strip(), rate, reporting)
        ),
        "rate_missing": rate is None,
    }
