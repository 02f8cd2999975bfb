"""A batch as arrays: its orders, revenue entries and paths read out of `attribution_batch`, and
its rows written into `attribution_rows`, all as binary COPY streams: fixed-width rows NumPy
reads and writes without a Python object per row.

A batch's (UTC day, currency) groups are keyed as day number (since 2000-01-01) * 1024 +
currency index, the currency index being 1 + its place in `CURRENCIES` (0: none).
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Sequence
from datetime import date

import asyncpg
import numpy as np

from skeldir.base import binary_copy, money
from skeldir.domains.attribution.batch import Batch
from skeldir.domains.attribution.packing import PackedOrders
from skeldir.domains.attribution.tenant_attribution import TenantAttribution, reclassify
from skeldir.domains.ingestion.campaign_keys import SEPARATOR, campaign_key
from skeldir.domains.ingestion.hints import hints_from_document

CURRENCIES = tuple(sorted(money.MINOR_UNIT_EXPONENTS))
PG_EPOCH_DAY = date(2000, 1, 1).toordinal()
DAY_US = 86_400_000_000

# (OFFSET 0 keeps each lateral lookup below an index scan per order: a hash join would read
# the tenant's whole table for every batch.)
_ORDERS_COPY_SQL = """
SELECT idx, ordered_at, coalesce(array_position($1::text[], currency), 0)::int2, has_snapshot,
       coalesce(is_new_customer, false)
FROM attribution_batch ORDER BY idx
"""
_ORDER_ROW = binary_copy.row_type(
    [
        ("idx", "int4"),
        ("ordered_at", "timestamptz"),
        ("currency", "int2"),
        ("has_snapshot", "bool"),
        ("is_new_customer", "bool"),
    ]
)

# With what the daily revenue report counted of each entry (-1 / NULL: nothing yet), and
# whether it counted it under another currency or day than the entry has now.
_ENTRIES_COPY_SQL = """
SELECT b.idx, e.amount_minor, e.kind = 'sale',
       coalesce(e.reported_amount_minor, -9223372036854775808),
       coalesce(e.reported_reporting_minor, -9223372036854775808),
       (CASE WHEN e.reported_converted IS NULL THEN -1 WHEN e.reported_converted THEN 1
             ELSE 0 END)::int2,
       e.reported_amount_minor IS NOT NULL
           AND (e.reported_currency, e.reported_day)
               IS DISTINCT FROM (e.currency, (e.occurred_at AT TIME ZONE 'UTC')::date)
FROM attribution_batch b
CROSS JOIN LATERAL (
    SELECT amount_minor, kind, reported_amount_minor, reported_reporting_minor,
           reported_converted, reported_currency, reported_day, currency, occurred_at
    FROM revenue_entries
    WHERE tenant_id = $1 AND order_id = b.order_id OFFSET 0) AS e
WHERE b.has_snapshot
"""
_ENTRY_ROW = binary_copy.row_type(
    [
        ("idx", "int4"),
        ("amount", "int8"),
        ("is_sale", "bool"),
        ("reported_amount", "int8"),
        ("reported_reporting", "int8"),
        ("reported_converted", "int2"),
        ("reported_elsewhere", "bool"),
    ]
)

# Paths, each touchpoint with its grain: platform and campaign keys as campaign_keys.campaign_key
# reads them (joined by its SEPARATOR). A touchpoint classified by rules no longer in force (or
# before platforms were classified) comes back as channel -1.
_PATHS_INSERT_SQL = """
INSERT INTO attribution_paths (idx, at, channel, touchpoint_id, grain)
SELECT b.idx, t.occurred_at,
       (CASE WHEN t.rules_version = $3 AND t.platform IS NOT NULL
             THEN coalesce(array_position($2::text[], t.channel), 0) - 1
             ELSE -1 END)::int2,
       t.touchpoint_id,
       concat_ws(E'\\x1f', coalesce(t.platform, ''), k.campaign_id,
                 CASE WHEN k.campaign_id = '' THEN k.utm_campaign ELSE '' END, k.adset_id, k.ad_id)
FROM attribution_batch b
CROSS JOIN LATERAL (
    SELECT occurred_at, channel, platform, rules_version, touchpoint_id, hints FROM touchpoints
    WHERE tenant_id = $1 AND visitor_id = b.visitor_id AND is_visit
      AND occurred_at BETWEEN b.ordered_at - $4::interval AND b.ordered_at OFFSET 0) AS t
CROSS JOIN LATERAL (
    SELECT replace(btrim(coalesce(t.hints->>'utm_id', '')), E'\\x1f', ' ') AS campaign_id,
           replace(btrim(coalesce(t.hints->>'utm_campaign', '')), E'\\x1f', ' ') AS utm_campaign,
           replace(btrim(coalesce(t.hints->>'skd_adset', '')), E'\\x1f', ' ') AS adset_id,
           replace(btrim(coalesce(t.hints->>'skd_ad', '')), E'\\x1f', ' ') AS ad_id) AS k
WHERE b.has_snapshot AND b.visitor_id IS NOT NULL
"""

_STALE_PATH_ORDERS_SQL = "SELECT DISTINCT idx FROM attribution_paths WHERE channel < 0"

# Paths in canonical order (time, fixed channel order, touchpoint id), each touchpoint's grain
# as its place in the batch's grain names.
_PATHS_COPY_SQL = """
SELECT p.idx, p.at, p.channel, (g.code - 1)::int4
FROM attribution_paths p JOIN unnest($1::text[]) WITH ORDINALITY AS g(grain, code) USING (grain)
ORDER BY p.idx, p.at, p.channel, p.touchpoint_id COLLATE "C"
"""
_PATH_ROW = binary_copy.row_type(
    [("idx", "int4"), ("at", "timestamptz"), ("channel", "int2"), ("grain", "int4")]
)

_STALE_TOUCHPOINTS_SQL = """
SELECT t.touchpoint_id, t.hints FROM attribution_batch b
JOIN touchpoints t ON t.tenant_id = $1 AND t.visitor_id = b.visitor_id
WHERE b.idx = ANY($2::integer[]) AND t.is_visit
  AND (t.rules_version IS DISTINCT FROM $3 OR t.channel IS NULL OR t.platform IS NULL)
"""

# The hints of orders whose path is their own landing page (no touchpoint in the window).
_LANDING_HINTS_SQL = """
SELECT b.idx, o.hints FROM attribution_batch b
JOIN orders o ON o.tenant_id = $1 AND o.order_id = b.order_id
WHERE b.idx = ANY($2::integer[])
"""

_ROW = (("idx", "int4"), ("revenue_minor", "int8"), ("gross_minor", "int8"), ("channel_set", "int4"))


def day_and_currency(key: int) -> tuple[date, str]:
    """(UTC day, currency) of a group key."""
    day, currency = divmod(key, 1024)
    return date.fromordinal(PG_EPOCH_DAY + day), CURRENCIES[currency - 1]


async def copy_orders(conn: asyncpg.Connection) -> np.ndarray:
    """The batch's orders: index, time, currency index and whether they have a snapshot."""
    return await _copy_out(conn, _ORDERS_COPY_SQL, _ORDER_ROW, list(CURRENCIES))


async def copy_entries(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> np.ndarray:
    """The revenue entries of the batch's orders that have a snapshot."""
    return await _copy_out(conn, _ENTRIES_COPY_SQL, _ENTRY_ROW, tenant_id)


async def copy_paths(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution
) -> tuple[np.ndarray, list[str]]:
    """The stored touchpoints of every order's path, as COPY rows (index, time, channel,
    grain), and the batch's grain names; touchpoints classified by older rules are classified
    again first."""
    arguments = (tenant_id, list(tenant.channels), tenant.rules_version, tenant.lookback)
    for _attempt in range(2):
        await conn.execute("DELETE FROM attribution_paths")
        await conn.execute(_PATHS_INSERT_SQL, *arguments)
        stale = [r["idx"] for r in await conn.fetch(_STALE_PATH_ORDERS_SQL)]
        if not stale:
            names = [
                r["grain"]
                for r in await conn.fetch(
                    'SELECT DISTINCT grain COLLATE "C" AS grain FROM attribution_paths ORDER BY 1'
                )
            ]
            return await _copy_out(conn, _PATHS_COPY_SQL, _PATH_ROW, names), names
        touchpoints = await conn.fetch(
            _STALE_TOUCHPOINTS_SQL, tenant_id, stale, tenant.rules_version
        )
        await reclassify(conn, tenant_id, tenant, touchpoints)
    raise RuntimeError("touchpoints stayed unclassified after reclassification")


async def _copy_out(conn: asyncpg.Connection, query: str, dtype: np.dtype, *args) -> np.ndarray:
    buffer = io.BytesIO()
    # COPY takes no parameters: asyncpg would inline them by asking the server (a prepare and
    # a quote_literal query, two more round trips per COPY, six per batch); they are inlined here.
    await conn.copy_from_query(_inlined(query, args), output=buffer, format="binary")
    return binary_copy.read(buffer.getbuffer(), dtype)


def _inlined(query: str, args: Sequence[uuid.UUID | Sequence[str]]) -> str:
    """The query with $1.. replaced by literals of its arguments: ids, and lists of text."""
    literals = [_literal(value) for value in args]
    return re.sub(r"\$(\d+)\b", lambda m: literals[int(m.group(1)) - 1], query)


def _literal(value: uuid.UUID | Sequence[str]) -> str:
    if isinstance(value, uuid.UUID):
        return f"'{value}'"
    # With standard_conforming_strings (on since PostgreSQL 9.1), doubling the quote is the
    # whole of quoting a string literal; the array is built from literals, never parsed.
    return "ARRAY[" + ",".join("'" + text.replace("'", "''") + "'" for text in value) + "]::text[]"


async def batch_of(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    tenant: TenantAttribution,
    orders: np.ndarray,
    paths: np.ndarray,
    entries: np.ndarray,
    grain_names: list[str],
) -> Batch:
    """Paths and entries as arrays; an order with no touchpoint in its window gets its own
    landing page (its hints) as its one touchpoint. The grains of landing pages not among
    `grain_names` are appended to it."""
    count = len(orders)
    order_index = paths["idx"].astype(np.int64)
    channel = paths["channel"].astype(np.int64)
    grain = paths["grain"].astype(np.int64)
    age = orders["ordered_at"].astype(np.int64)[order_index] - paths["at"].astype(np.int64)
    counts = np.bincount(order_index, minlength=count)
    landing = np.flatnonzero((counts == 0) & orders["has_snapshot"])
    extra = [landing]
    if len(landing):
        codes = {name: code for code, name in enumerate(tenant.channels)}
        grain_codes = {name: code for code, name in enumerate(grain_names)}
        rows = {
            r["idx"]: hints_from_document(r["hints"])
            for r in await conn.fetch(_LANDING_HINTS_SQL, tenant_id, landing.tolist())
        }
        hints = [rows[i] for i in landing.tolist()]
        landing_grain = []
        for h in hints:
            name = SEPARATOR.join((tenant.platform(h), *campaign_key(h)))
            if name not in grain_codes:
                grain_codes[name] = len(grain_names)
                grain_names.append(name)
            landing_grain.append(grain_codes[name])
        extra_channel = [np.array([codes[tenant.classify(h)] for h in hints], dtype=np.int64)]
        extra_grain = [np.array(landing_grain, dtype=np.int64)]
    else:
        extra_channel, extra_grain = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    # Orders with no snapshot are not attributed; they get an empty stand-in path entry so
    # every order has one, and no entries (nothing is allocated or written for them).
    unattributed = np.flatnonzero(~orders["has_snapshot"])
    if len(unattributed) and not grain_names:
        grain_names.append(SEPARATOR * 4)  # no platform, no campaign keys
    extra.append(unattributed)
    extra_channel.append(np.zeros(len(unattributed), dtype=np.int64))
    extra_grain.append(np.zeros(len(unattributed), dtype=np.int64))
    if len(landing) or len(unattributed):
        order_index = np.concatenate([order_index, *extra])
        channel = np.concatenate([channel, *extra_channel])
        grain = np.concatenate([grain, *extra_grain])
        age = np.concatenate([age, np.zeros(len(landing) + len(unattributed), dtype=np.int64)])
        by_order = np.argsort(order_index, kind="stable")
        order_index, channel = order_index[by_order], channel[by_order]
        grain, age = grain[by_order], age[by_order]
        counts = np.bincount(order_index, minlength=count)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Batch(
        offsets,
        channel,
        age,
        entries["idx"].astype(np.int64),
        entries["amount"].astype(np.int64),
        entries["is_sale"].astype(bool),
        grain,
    )


def channel_sets(
    packed: PackedOrders, channels: Sequence[str], attributed: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Each order's set of channels as a small integer, and each set's comma-joined names:
    a batch has few distinct sets, so names cross the wire once per set, not per order."""
    bits = np.left_shift(np.int64(1), packed.pair_channel.astype(np.int64))
    masks = np.zeros(len(packed.first) - 1, dtype=np.int64)
    nonempty = np.diff(packed.first) > 0
    masks[nonempty] = np.bitwise_or.reduceat(bits, packed.first[:-1][nonempty])
    unique, inverse = np.unique(masks[attributed], return_inverse=True)
    names = [
        ",".join(channels[c] for c in range(len(channels)) if mask >> c & 1)
        for mask in unique.tolist()
    ]
    sets = np.zeros(len(masks), dtype=np.int64)
    sets[attributed] = inverse
    return sets, names


async def copy_rows(
    conn: asyncpg.Connection,
    packed: PackedOrders,
    attributed: np.ndarray,
    revenue: np.ndarray,
    gross: np.ndarray,
    sets: np.ndarray,
    model_count: int,
) -> None:
    """The attributed orders' rows into `attribution_rows`."""
    stream = rows_stream(packed, attributed, revenue, gross, sets, model_count)
    await conn.copy_to_table("attribution_rows", source=io.BytesIO(stream), format="binary")


def rows_stream(
    packed: PackedOrders,
    attributed: np.ndarray,
    revenue: np.ndarray,
    gross: np.ndarray,
    sets: np.ndarray,
    model_count: int,
) -> bytes:
    """attribution_rows as a binary COPY stream, built per channel count (fixed-width rows)."""
    widths = np.diff(packed.first)
    parts = [binary_copy.HEADER]
    for width in np.unique(widths[attributed]).tolist():
        members = attributed[widths[attributed] == width]
        dtype = binary_copy.row_type([*_ROW, ("credits", np.dtype((">i8", (width * 2 * model_count,))))])
        rows = binary_copy.rows(dtype, len(members))
        rows["idx"] = members
        rows["revenue_minor"] = revenue[members]
        rows["gross_minor"] = gross[members]
        rows["channel_set"] = sets[members]
        pairs = packed.first[members][:, None] + np.arange(width)[None, :]
        rows["credits"] = packed.values[pairs].reshape(len(members), -1)
        parts.append(rows.tobytes())
    parts.append(binary_copy.TRAILER)
    return b"".join(parts)
