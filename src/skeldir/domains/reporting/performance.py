"""The performance report: spend against attributed revenue, orders and new customers per
channel, platform, campaign, ad set or ad under one model, with ROAS, CPA and CAC.

Revenue comes from campaign_daily. A touchpoint's campaign is its utm_id; without one, its
utm_campaign matched here, at read time, to the tenant's spend campaigns of the same platform by
id, else by name ignoring case (so spend loaded after the orders still finds its revenue). Spend
comes from ad_spend. Amounts convert into the reporting currency at each day's rate, row by row
at the finest grain and rounded half up, before anything is summed, so every level's totals
agree; an amount whose day has no rate is left out and its row says `rate_missing`, never
converted 1:1. With `currency`, only orders and spend in that currency count, unconverted.

Rows with no campaign (organic, direct, email) are split by channel; at level `channel`, spend
counts under its platform's channel (`SPEND_CHANNELS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import asyncpg

from skeldir.base import money

LEVELS = ("channel", "platform", "campaign", "adset", "ad")
# The channel whose spend a platform's is, at level `channel` (the default rules' channels).
SPEND_CHANNELS = {
    "meta": "paid_social",
    "tiktok": "paid_social",
    "other": "paid_social",
    "google_ads": "paid_search",
    "microsoft_ads": "paid_search",
}
ORDER_UNITS = Decimal(1_000_000)


@dataclass(frozen=True)
class DrillDown:
    """Only the revenue of this channel (and the spend of platforms counted under it), of this
    platform, of this campaign; None: all."""

    channel: str | None = None
    platform: str | None = None
    campaign_id: str | None = None


ALL = DrillDown()
_RATIO = Decimal("0.0001")

# Per level: the key of revenue rows and of spend rows, the same number of text columns. A key
# part that is the level's "none" (no platform, no campaign) is told apart by channel.
_REVENUE_KEYS = {
    "channel": ("r.channel",),
    "platform": ("r.platform", "CASE WHEN r.platform = '' THEN r.channel ELSE '' END"),
    "campaign": (
        "r.platform", "r.campaign_id", "CASE WHEN r.campaign_id = '' THEN r.channel ELSE '' END"
    ),
    "adset": (
        "r.platform", "r.campaign_id", "r.adset_id",
        "CASE WHEN r.campaign_id = '' THEN r.channel ELSE '' END",
    ),
    "ad": (
        "r.platform", "r.campaign_id", "r.adset_id", "r.ad_id",
        "CASE WHEN r.campaign_id = '' THEN r.channel ELSE '' END",
    ),
}
_SPEND_CHANNEL = (
    "CASE s.platform "
    + " ".join(f"WHEN '{p}' THEN '{c}'" for p, c in SPEND_CHANNELS.items())
    + " END"
)
_SPEND_KEYS = {
    "channel": (_SPEND_CHANNEL,),
    "platform": ("s.platform", "''"),
    "campaign": ("s.platform", "s.campaign_id", "''"),
    "adset": ("s.platform", "s.campaign_id", "s.adset_id", "''"),
    "ad": ("s.platform", "s.campaign_id", "s.adset_id", "s.ad_id", "''"),
}
# The fields each key part is, in order; `channel` last where it only tells "none" rows apart.
KEY_FIELDS = {
    "channel": ("channel",),
    "platform": ("platform", "channel"),
    "campaign": ("platform", "campaign_id", "channel"),
    "adset": ("platform", "campaign_id", "adset_id", "channel"),
    "ad": ("platform", "campaign_id", "adset_id", "ad_id", "channel"),
}

# $1 model, $2 first day, $3 last day, $4 currency (NULL: convert into $5, the reporting
# currency), $6/$7 currency exponents, $8 the keyset (NULL: from the start), $9 limit, $10 to
# $12 the channel, platform and campaign to drill into (NULL: all).
_SQL = """
WITH exponents AS (SELECT * FROM unnest($6::text[], $7::integer[]) AS e(currency, exponent)),
-- Minor units of $5 per minor unit of a currency on a day (no row: no rate that day).
factors AS (
    SELECT fx.day, fx.base AS currency,
           fx.rate * power(10::numeric, er.exponent - ec.exponent) AS factor
    FROM fx_rates fx
    JOIN exponents er ON er.currency = $5
    JOIN exponents ec ON ec.currency = fx.base
    WHERE fx.quote = $5 AND fx.day BETWEEN $2 AND $3 AND $4::text IS NULL
),
-- The utm_campaigns of visits without a utm_id, matched to a spend campaign of their platform:
-- by id, else by name ignoring case (the lowest id when several names match).
refs AS (
    SELECT DISTINCT platform, utm_campaign, lower(utm_campaign) AS name FROM campaign_daily
    WHERE model = $1 AND day BETWEEN $2 AND $3 AND ($4::text IS NULL OR currency = $4)
      AND campaign_id = '' AND utm_campaign <> '' AND platform <> ''
),
matched AS (
    SELECT r.platform, r.utm_campaign,
           coalesce((SELECT s.campaign_id FROM ad_spend s
                     WHERE s.platform = r.platform AND s.campaign_id = r.utm_campaign LIMIT 1),
                    (SELECT s.campaign_id FROM ad_spend s
                     WHERE s.platform = r.platform
                       AND s.campaign_name_key = r.name
                     ORDER BY s.campaign_id LIMIT 1)) AS campaign_id
    FROM refs r
),
revenue AS (
    SELECT c.channel, c.platform,
           CASE WHEN c.campaign_id <> '' THEN c.campaign_id
                ELSE coalesce(m.campaign_id, '') END AS campaign_id,
           c.adset_id, c.ad_id, c.orders_micro, c.new_customers_micro,
           CASE WHEN $4::text IS NOT NULL OR c.currency = $5 THEN c.net_minor
                ELSE round(c.net_minor * f.factor)::bigint END AS net,
           CASE WHEN $4::text IS NOT NULL OR c.currency = $5 THEN c.new_customer_net_minor
                ELSE round(c.new_customer_net_minor * f.factor)::bigint END AS new_net,
           $4::text IS NULL AND c.currency <> $5 AND f.factor IS NULL
               AND (c.net_minor <> 0 OR c.new_customer_net_minor <> 0) AS missing
    FROM campaign_daily c
    LEFT JOIN factors f ON f.day = c.day AND f.currency = c.currency
    LEFT JOIN matched m ON c.campaign_id = '' AND m.platform = c.platform
                       AND m.utm_campaign = c.utm_campaign
    WHERE c.model = $1 AND c.day BETWEEN $2 AND $3 AND ($4::text IS NULL OR c.currency = $4)
),
spend AS (
    SELECT s.platform, s.campaign_id, s.adset_id, s.ad_id,
           CASE WHEN $4::text IS NOT NULL OR s.currency = $5 THEN s.spend_minor
                ELSE round(s.spend_minor * f.factor)::bigint END AS spend,
           $4::text IS NULL AND s.currency <> $5 AND f.factor IS NULL AND s.spend_minor <> 0
               AS missing
    FROM ad_spend s LEFT JOIN factors f ON f.day = s.day AND f.currency = s.currency
    WHERE s.day BETWEEN $2 AND $3 AND ($4::text IS NULL OR s.currency = $4)
),
-- Each side summed per key first: the union then holds a row per key and side.
rows AS (
    SELECT {keys}, coalesce(sum(spend), 0)::bigint AS spend, coalesce(sum(net), 0)::bigint AS net,
           coalesce(sum(orders_micro), 0)::bigint AS orders_micro,
           coalesce(sum(new_customers_micro), 0)::bigint AS new_customers_micro,
           coalesce(sum(new_net), 0)::bigint AS new_net, bool_or(missing) AS missing,
           bool_or(has_spend) AS has_spend
    FROM (
        SELECT {revenue_keys}, NULL::numeric AS spend, sum(r.net) AS net,
               sum(r.orders_micro) AS orders_micro,
               sum(r.new_customers_micro) AS new_customers_micro, sum(r.new_net) AS new_net,
               bool_or(r.missing) AS missing, false AS has_spend
        FROM revenue r
        WHERE ($10::text IS NULL OR r.channel = $10) AND ($11::text IS NULL OR r.platform = $11)
          AND ($12::text IS NULL OR r.campaign_id = $12)
        GROUP BY {key_positions}
        UNION ALL
        SELECT {spend_keys}, sum(s.spend), NULL, NULL, NULL, NULL, bool_or(s.missing), true
        FROM spend s
        WHERE ($10::text IS NULL OR {spend_channel} = $10)
          AND ($11::text IS NULL OR s.platform = $11)
          AND ($12::text IS NULL OR s.campaign_id = $12)
        GROUP BY {key_positions}
    ) x
    GROUP BY {keys}
)
SELECT * FROM rows
WHERE (has_spend OR net <> 0 OR orders_micro <> 0 OR new_customers_micro <> 0 OR new_net <> 0
       OR missing)
  AND ($8::text[] IS NULL OR ({keys}) > ({after}))
ORDER BY {keys}
LIMIT $9
"""

# The latest non-empty names of the page's campaigns, ad sets and ads (each a backward scan of
# the campaign's rows by day, stopping at the first match).
_NAMES_SQL = """
SELECT CASE WHEN k.campaign_id <> '' THEN
           (SELECT campaign_name FROM ad_spend s WHERE s.platform = k.platform
              AND s.campaign_id = k.campaign_id AND s.campaign_name <> ''
            ORDER BY s.day DESC LIMIT 1) END AS campaign_name,
       CASE WHEN k.adset_id <> '' THEN
           (SELECT adset_name FROM ad_spend s WHERE s.platform = k.platform
              AND s.campaign_id = k.campaign_id AND s.adset_id = k.adset_id
              AND s.adset_name <> ''
            ORDER BY s.day DESC LIMIT 1) END AS adset_name,
       CASE WHEN k.ad_id <> '' THEN
           (SELECT ad_name FROM ad_spend s WHERE s.platform = k.platform
              AND s.campaign_id = k.campaign_id AND s.adset_id = k.adset_id
              AND s.ad_id = k.ad_id AND s.ad_name <> ''
            ORDER BY s.day DESC LIMIT 1) END AS ad_name
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
     AS k(platform, campaign_id, adset_id, ad_id, position)
ORDER BY k.position
"""


def _query(level: str) -> str:
    parts = len(KEY_FIELDS[level])
    keys = ", ".join(f"k{i}" for i in range(parts))
    return _SQL.format(
        keys=keys,
        revenue_keys=", ".join(
            f'{expr} COLLATE "C" AS k{i}' for i, expr in enumerate(_REVENUE_KEYS[level])
        ),
        spend_keys=", ".join(
            f'({expr})::text COLLATE "C" AS k{i}' for i, expr in enumerate(_SPEND_KEYS[level])
        ),
        after=", ".join(f'$8[{i + 1}] COLLATE "C"' for i in range(parts)),
        key_positions=", ".join(str(i + 1) for i in range(parts)),
        spend_channel=_SPEND_CHANNEL,
    )


_QUERIES = {level: _query(level) for level in LEVELS}


async def performance_rows(
    conn: asyncpg.Connection,
    model: str,
    level: str,
    start: date,
    end: date,
    currency: str | None,
    after: tuple[str, ...] | None,
    limit: int | None,
    drill: DrillDown = ALL,
) -> list[dict]:
    """Rows of `level` in key order after the key `after`, at most `limit` of them."""
    reporting = (await conn.fetchval("SELECT reporting_currency FROM tenants")).strip()
    # A generic plan must serve every currency, level and window alike and picks badly; the
    # query is planned for its own parameters (a few milliseconds).
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    exponents = sorted(money.MINOR_UNIT_EXPONENTS.items())
    records = await conn.fetch(
        _QUERIES[level],
        model,
        start,
        end,
        currency,
        reporting,
        [code for code, _ in exponents],
        [exponent for _, exponent in exponents],
        list(after) if after is not None else None,
        limit,
        drill.channel,
        drill.platform,
        drill.campaign_id,
    )
    rows = [_row(r, level, currency or reporting) for r in records]
    if level != "channel" and rows:
        await _add_names(conn, rows)
    return rows


def _row(r: asyncpg.Record, level: str, currency: str) -> dict:
    fields = KEY_FIELDS[level]
    key = [r[f"k{i}"] for i in range(len(fields))]
    named = dict(zip(fields, key, strict=True))
    spend, revenue = r["spend"], r["net"]
    orders, new_customers = r["orders_micro"], r["new_customers_micro"]
    return {
        # The keyset; names a "none" row's channel apart from the fields shown.
        **{f"key_{i}": part for i, part in enumerate(key)},
        "channel": named.get("channel") or None,
        "platform": named.get("platform") or None,
        "campaign_id": named.get("campaign_id") or None,
        "campaign_name": None,
        "adset_id": named.get("adset_id") or None,
        "adset_name": None,
        "ad_id": named.get("ad_id") or None,
        "ad_name": None,
        "currency": currency,
        "spend_cents": spend,
        "revenue_cents": revenue,
        "orders": _decimal(orders),
        "new_customers": _decimal(new_customers),
        "new_customer_revenue_cents": r["new_net"],
        "roas": _ratio(revenue, spend),
        "cpa_cents": _per(spend, orders),
        "cac_cents": _per(spend, new_customers),
        "rate_missing": bool(r["missing"]),
    }


def _decimal(units: int) -> str:
    """Millionths of an order as a decimal string: 333334 -> "0.333334"."""
    return f"{Decimal(units) / ORDER_UNITS:.6f}"


def _ratio(revenue: int, spend: int) -> str | None:
    """revenue / spend to four decimals, rounded half up; None without spend."""
    if spend == 0:
        return None
    return str((Decimal(revenue) / Decimal(spend)).quantize(_RATIO, ROUND_HALF_UP))


def _per(spend: int, units: int) -> int | None:
    """Spend per (fractional) order or new customer in minor units, rounded half up; None
    without spend or without any."""
    if spend == 0 or units == 0:
        return None
    return int((Decimal(spend) * ORDER_UNITS / Decimal(units)).to_integral_value(ROUND_HALF_UP))


async def _add_names(conn: asyncpg.Connection, rows: list[dict]) -> None:
    keys = [
        (r["platform"] or "", r["campaign_id"] or "", r["adset_id"] or "", r["ad_id"] or "")
        for r in rows
    ]
    names = await conn.fetch(_NAMES_SQL, *(list(column) for column in zip(*keys, strict=True)))
    for row, found in zip(rows, names, strict=True):
        if row["campaign_id"]:
            row["campaign_name"] = found["campaign_name"]
        if row["adset_id"]:
            row["adset_name"] = found["adset_name"]
        if row["ad_id"]:
            row["ad_name"] = found["ad_name"]
