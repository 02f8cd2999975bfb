"""Attribute a tenant's pending orders, batch by batch, serialised per tenant.

A batch reads its pending orders with the version they were marked at, their paths (stored
touchpoints, classified once by the rules in force), allocates every model for the whole batch
at once (`batch.allocate_batch`), and writes one row per order through COPY and one
INSERT ... SELECT, together with the changes to the daily channel and campaign reports (each
row keeps its credits per campaign grain, `campaign_grain`, for the campaign report). It clears a pending
mark only if neither the order nor its mark changed meanwhile (same order version, same mark
generation); a changed or re-marked order stays pending for the next batch.

The batch loop calls `_take_batch`, `_write_batch` and `_attribute` through this module's
globals, so a test that replaces one of them here changes what the loop runs.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
import numpy as np

from skeldir.base import money
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution import (
    batch_arrays,
    campaign_daily_projection,
    campaign_grain,
    channel_daily_projection,
)
from skeldir.domains.attribution.batch import allocate_batch
from skeldir.domains.attribution.packing import ChannelDayChanges, GroupSums, pack
from skeldir.domains.attribution.tenant_attribution import (
    TenantAttribution,
    load_tenant_attribution,
)

_BATCH_TABLES_SQL = """
CREATE TEMPORARY TABLE IF NOT EXISTS attribution_batch (
    idx integer, order_id uuid, order_version bigint, generation bigint, has_snapshot boolean,
    currency text,
    ordered_at timestamptz, visitor_id text, is_new_customer boolean
) ON COMMIT DELETE ROWS;
CREATE TEMPORARY TABLE IF NOT EXISTS attribution_paths (
    idx integer, at timestamptz, channel smallint, touchpoint_id text, grain text
) ON COMMIT DELETE ROWS;
CREATE TEMPORARY TABLE IF NOT EXISTS attribution_rows (
    idx integer, revenue_minor bigint, gross_minor bigint, channel_set integer, credits bytea
) ON COMMIT DELETE ROWS;
SET LOCAL work_mem = '64MB';
"""

# The batch: the oldest pending orders, numbered from 0, with the visitor each is stitched to,
# in order of trust: checkout token, cart token, the order's own visitor id, the customer
# reference (each matched by its stitch key). Claims come unauthenticated (the public collect
# key), so a claim counts only if it was received before the order was, and of the claims of
# one key the first received wins: a later claim, whatever time it claims, never moves an
# order's journey.
_TAKE_BATCH_SQL = """
INSERT INTO attribution_batch
SELECT (row_number() OVER ()) - 1, p.order_id, p.order_version, p.generation, o.has_snapshot,
       o.currency,
       o.ordered_at,
       coalesce(
           CASE WHEN o.checkout_key IS NOT NULL THEN
               (SELECT t.visitor_id FROM touchpoints t WHERE t.tenant_id = $1
                  AND t.checkout_key = o.checkout_key AND t.received_at <= o.created_at
                ORDER BY t.received_at, t.touchpoint_id LIMIT 1) END,
           CASE WHEN o.cart_key IS NOT NULL THEN
               (SELECT t.visitor_id FROM touchpoints t WHERE t.tenant_id = $1
                  AND t.cart_key = o.cart_key AND t.received_at <= o.created_at
                ORDER BY t.received_at, t.touchpoint_id LIMIT 1) END,
           o.visitor_id,
           CASE WHEN o.customer_key IS NOT NULL THEN
               (SELECT t.visitor_id FROM touchpoints t WHERE t.tenant_id = $1
                  AND t.customer_key = o.customer_key AND t.received_at <= o.created_at
                ORDER BY t.received_at, t.touchpoint_id LIMIT 1) END),
       o.is_new_customer
FROM (SELECT order_id, order_version, generation FROM pending_orders WHERE tenant_id = $1
      ORDER BY marked_at LIMIT $2) AS p
-- One index lookup per pending order, whatever the estimates: a hash join would read every
-- order of the tenant for a live batch of a few dozen.
CROSS JOIN LATERAL (SELECT * FROM orders o WHERE o.tenant_id = $1 AND o.order_id = p.order_id
                    LIMIT 1) AS o
"""

# Orders erased on request keep the credits they were attributed (their journey is gone, so
# they could not be attributed again): their pending marks are dropped unattributed, and the
# daily revenue report still counts their entries (a refund after the erasure lowers revenue,
# while the credits stay as attributed; see docs/privacy.md).
_FREEZE_REDACTED_SQL = """
WITH frozen AS (
    DELETE FROM pending_orders p
    WHERE p.tenant_id = $1 AND p.order_id IN (
        SELECT o.order_id FROM orders o WHERE o.tenant_id = $1 AND o.redacted_at IS NOT NULL)
    RETURNING p.order_id)
INSERT INTO report_dirty_orders (tenant_id, order_id)
SELECT $1::uuid, order_id FROM frozen
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()
"""

_RATES_SQL = """
SELECT day, base, rate FROM fx_rates
WHERE quote = $1 AND (day, base) IN (SELECT * FROM unnest($2::date[], $3::text[]))
"""

_UPSERT_ROWS_SQL = """
INSERT INTO order_attributions AS a (tenant_id, order_id, day, currency, revenue_minor,
    gross_minor, visitor_id, reporting_currency, fx_rate, fx_factor, models, model_versions,
    channels, credits, computed_at, grains, grain_credits, is_new_customer)
SELECT $1, b.order_id, (b.ordered_at AT TIME ZONE 'UTC')::date, b.currency, r.revenue_minor,
       r.gross_minor, b.visitor_id, $2, fx.rate, fx.factor, $3::text[], $4::integer[],
       string_to_array(s.channels, ','), r.credits, now(), string_to_array(g.grains, E'\\x1e'),
       g.credits, b.is_new_customer
FROM attribution_rows r
JOIN attribution_batch b ON b.idx = r.idx
JOIN unnest($9::integer[], $10::text[]) AS s(channel_set, channels) ON s.channel_set = r.channel_set
JOIN unnest($11::integer[], $12::text[], $13::bytea[]) AS g(idx, grains, credits) ON g.idx = r.idx
LEFT JOIN unnest($5::date[], $6::text[], $7::numeric[], $8::numeric[]) AS fx(day, currency, rate, factor)
       ON fx.day = (b.ordered_at AT TIME ZONE 'UTC')::date AND fx.currency = b.currency
ON CONFLICT (tenant_id, order_id) DO UPDATE SET
    day = EXCLUDED.day, currency = EXCLUDED.currency, revenue_minor = EXCLUDED.revenue_minor,
    gross_minor = EXCLUDED.gross_minor, visitor_id = EXCLUDED.visitor_id,
    reporting_currency = EXCLUDED.reporting_currency, fx_rate = EXCLUDED.fx_rate,
    fx_factor = EXCLUDED.fx_factor, models = EXCLUDED.models,
    model_versions = EXCLUDED.model_versions, channels = EXCLUDED.channels,
    credits = EXCLUDED.credits, computed_at = EXCLUDED.computed_at, grains = EXCLUDED.grains,
    grain_credits = EXCLUDED.grain_credits, is_new_customer = EXCLUDED.is_new_customer
"""

# Orders the daily revenue report must count again (it counts entries at the order's stamped
# rate): those whose entries it has not counted as they now stand (new entries, a rate stamped
# or changed), and those with no snapshot yet (a refund came first: counted unconverted).
_MARK_REVENUE_REPORT_SQL = """
INSERT INTO report_dirty_orders (tenant_id, order_id)
SELECT $1::uuid, order_id FROM attribution_batch
WHERE NOT has_snapshot OR idx = ANY($2::integer[])
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()
"""

_CLEAR_PENDING_SQL = """
DELETE FROM pending_orders p USING attribution_batch b
WHERE p.tenant_id = $1 AND p.order_id = b.order_id AND p.order_version = b.order_version
  AND p.generation = b.generation
"""


@dataclass(frozen=True, slots=True)
class RecomputeOutcome:
    batches: int
    orders: int
    # True when the batch limit stopped the run with orders still pending.
    more_pending: bool


def lock_key(tenant_id: uuid.UUID) -> int:
    """A stable signed 64-bit advisory lock key per tenant."""
    return int.from_bytes(tenant_id.bytes[:8], "big", signed=True)


async def recompute_pending(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    *,
    batch_size: int,
    max_batches: int = 200,
    max_seconds: float | None = None,
) -> RecomputeOutcome:
    """Attribute pending orders batch by batch until none is left, or `max_batches` batches or
    `max_seconds` (checked after each full batch) are spent: then `more_pending`."""
    started = time.monotonic()
    batches = orders = taken = 0
    while batches < max_batches:
        if (
            taken == batch_size
            and max_seconds is not None
            and time.monotonic() - started >= max_seconds
        ):
            break
        async with tenant_transaction(pool, tenant_id) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(tenant_id))
            taken = await _take_batch(conn, tenant_id, batch_size)
            if not taken:
                return RecomputeOutcome(batches, orders, more_pending=False)
            await _write_batch(conn, tenant_id)
        batches += 1
        orders += taken
    return RecomputeOutcome(batches, orders, more_pending=True)


async def _take_batch(conn: asyncpg.Connection, tenant_id: uuid.UUID, batch_size: int) -> int:
    """Read the oldest pending orders, as they stand now, into `attribution_batch`."""
    await conn.execute(_BATCH_TABLES_SQL)
    await conn.execute(_FREEZE_REDACTED_SQL, tenant_id)
    status = await conn.execute(_TAKE_BATCH_SQL, tenant_id, batch_size)
    taken = int(status.rsplit(" ", 1)[-1])
    if taken:
        # A temporary table has no statistics until analyzed, and the planner then guesses
        # about a thousand rows: every join of the batch to the tenant's orders, entries,
        # touchpoints and earlier rows became a hash join over all of them, which grew with
        # the tenant. Analyzed, a live batch of a few dozen orders is looked up by index.
        await conn.execute("ANALYZE attribution_batch")
    return taken


async def _write_batch(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    """Attribute the batch taken, and clear the pending marks of orders not changed since."""
    orders = await batch_arrays.copy_orders(conn)
    uncounted: list[int] = []
    if orders["has_snapshot"].any():
        tenant = await load_tenant_attribution(conn, tenant_id)
        uncounted = await _attribute(conn, tenant_id, tenant, orders)
    await conn.execute(_MARK_REVENUE_REPORT_SQL, tenant_id, uncounted)
    await conn.execute(_CLEAR_PENDING_SQL, tenant_id)


async def _attribute(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, orders: np.ndarray
) -> list[int]:
    """Write the batch's rows and report changes; the orders whose entries the daily revenue
    report has not counted as they now stand."""
    count = len(orders)
    ordered_us = orders["ordered_at"].astype(np.int64)
    paths, grain_names = await batch_arrays.copy_paths(conn, tenant_id, tenant)
    entries = await batch_arrays.copy_entries(conn, tenant_id)
    batch = await batch_arrays.batch_of(
        conn, tenant_id, tenant, orders, paths, entries, grain_names
    )
    credits = allocate_batch(batch, tenant.model_settings)
    models = tenant.models
    tp_order = np.repeat(np.arange(count), np.diff(batch.offsets))
    packed = pack(
        count,
        tp_order,
        batch.channel,
        [credits.net[m] for m in models],
        [credits.gross[m] for m in models],
    )
    attributed = np.flatnonzero(orders["has_snapshot"])
    channel_sets, set_names = batch_arrays.channel_sets(packed, tenant.channels, attributed)
    by_order = GroupSums(batch.entry_order, count)
    revenue = by_order(batch.entry_amount)
    gross = by_order(np.where(batch.entry_is_sale, batch.entry_amount, 0))
    days = (ordered_us // batch_arrays.DAY_US).astype(np.int64)
    currency = orders["currency"].astype(np.int64)
    changes = ChannelDayChanges.empty()
    group_keys, order_group = np.unique(days * 1024 + currency, return_inverse=True)
    groups = [batch_arrays.day_and_currency(int(key)) for key in group_keys.tolist()]
    pair_order = np.repeat(np.arange(count), np.diff(packed.first))
    changes.add(
        groups,
        order_group[pair_order],
        packed.pair_channel,
        tenant.channels,
        models,
        packed.values,
        1,
    )
    grains = campaign_grain.grain_credits(
        count,
        tp_order,
        batch.channel,
        batch.grain,
        tenant.channels,
        grain_names,
        models,
        credits,
        campaign_grain.order_units(batch, gross, tenant.model_settings),
    )
    campaign_changes = campaign_grain.CampaignDayChanges.empty()
    grain_order = np.repeat(np.arange(count), np.diff(grains.first))
    campaign_changes.add(
        groups,
        order_group[grain_order],
        grains.pair_grain,
        grains.names,
        models,
        grains.values,
        orders["is_new_customer"][grain_order],
        1,
    )
    # Read before the rows are replaced.
    await channel_daily_projection.take_back_previous(conn, tenant_id, changes)
    await campaign_daily_projection.take_back_previous(conn, tenant_id, campaign_changes)
    await batch_arrays.copy_rows(conn, packed, attributed, revenue, gross, channel_sets, len(models))

    rates = await _rates(conn, days[attributed], currency[attributed], tenant.reporting_currency)
    await conn.execute(
        _UPSERT_ROWS_SQL,
        tenant_id,
        tenant.reporting_currency,
        list(models),
        [tenant.version(m) for m in models],
        *rates,
        list(range(len(set_names))),
        set_names,
        attributed.tolist(),
        *grains.stored(attributed),
    )

    await channel_daily_projection.write_changes(conn, tenant_id, changes)
    await campaign_daily_projection.write_changes(conn, tenant_id, campaign_changes)
    factors = dict(zip(zip(rates[0], rates[1]), rates[3], strict=True))
    order_factor = [factors.get(group) for group in groups]
    return _uncounted(entries, [order_factor[g] for g in order_group.tolist()])


def _uncounted(entries: np.ndarray, factor: list[Decimal | None]) -> list[int]:
    """Orders with an entry the daily revenue report counts otherwise than it now stands:
    its amount, whether it converts, its amount in the reporting currency, and its currency
    and day."""
    order = entries["idx"].astype(np.int64)
    amount = entries["amount"].astype(np.int64)
    converts = np.array([f is not None for f in factor], dtype=bool)[order]
    unit = np.array([f == 1 for f in factor], dtype=bool)[order]
    expected = np.where(converts, amount, 0)
    for i in np.flatnonzero(converts & ~unit).tolist():
        expected[i] = int((amount[i] * factor[order[i]]).to_integral_value(ROUND_HALF_UP))
    stale = (
        entries["reported_elsewhere"]
        | (entries["reported_amount"] != amount)
        | (entries["reported_converted"] != converts.astype(np.int16))
        | (entries["reported_reporting"] != expected)
    )
    return np.unique(order[stale]).tolist()


async def _rates(
    conn: asyncpg.Connection, days: np.ndarray, currencies: np.ndarray, reporting: str
) -> tuple[list, list, list, list]:
    """Per (day, currency) of the batch, the rate into the reporting currency on that day
    (1 for the reporting currency itself); pairs with no known rate are left out."""
    group_keys = np.unique(days * 1024 + currencies).tolist()
    pairs = sorted({batch_arrays.day_and_currency(int(key)) for key in group_keys})
    rates = {(day, currency): Decimal(1) for day, currency in pairs if currency == reporting}
    foreign = [(day, currency) for day, currency in pairs if currency != reporting]
    if foreign:
        found = await conn.fetch(
            _RATES_SQL, reporting, [d for d, _ in foreign], [c for _, c in foreign]
        )
        rates.update({(r["day"], r["base"]): r["rate"] for r in found})
    keys = sorted(rates)
    return (
        [day for day, _ in keys],
        [currency for _, currency in keys],
        [rates[key] for key in keys],
        [fx_factor(rates[key], key[1], reporting) for key in keys],
    )


def fx_factor(rate: Decimal, currency: str, reporting_currency: str) -> Decimal:
    """Reporting minor units per minor unit of `currency` (exponents may differ: JPY vs USD)."""
    return rate.scaleb(money.exponent(reporting_currency) - money.exponent(currency))
