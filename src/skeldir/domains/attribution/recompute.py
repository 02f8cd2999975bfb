"""Attribute a tenant's pending orders, batch by batch, serialised per tenant.

A batch reads its pending orders with the version they were marked at, their paths (stored
touchpoints, classified once by the rules in force), allocates every model for the whole batch
at once (`batch.allocate_batch`), and writes one row per order through COPY and one
INSERT ... SELECT, together with the change to the daily channel report. It clears a pending
mark only if neither the order nor its mark changed meanwhile (same order version, same mark
generation); a changed or re-marked order stays pending for the next batch.
"""

from __future__ import annotations

import functools
import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
import numpy as np
import orjson

from skeldir.base import binary_copy, money
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.batch import Batch, Settings, allocate_batch, reference_credits
from skeldir.domains.attribution.channel_rules import RuleSet, default_rule_set
from skeldir.domains.attribution.channels import channel_sort_key
from skeldir.domains.attribution.models import MODEL_VERSION, RULE_BASED_MODELS, Touchpoint
from skeldir.domains.attribution.packing import ChannelDayChanges, GroupSums, pack, unpack
from skeldir.domains.ingestion.hints import hints_from_document

DATA_DRIVEN_MODELS = ("markov", "shapley")

_BATCH_TABLES_SQL = """
CREATE TEMPORARY TABLE IF NOT EXISTS attribution_batch (
    idx integer, order_id uuid, order_version bigint, generation bigint, has_snapshot boolean,
    currency text,
    ordered_at timestamptz, visitor_id text
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
                ORDER BY t.received_at, t.touchpoint_id LIMIT 1) END)
FROM (SELECT order_id, order_version, generation FROM pending_orders WHERE tenant_id = $1
      ORDER BY marked_at LIMIT $2) AS p
JOIN orders o ON o.tenant_id = $1 AND o.order_id = p.order_id
"""

# Everything below streams in COPY's binary format: fixed-width rows NumPy reads without a
# Python object per row. (OFFSET 0 keeps each lateral lookup an index scan per order: a hash
# join would read the tenant's whole table for every batch.)
_ORDERS_COPY_SQL = """
SELECT idx, ordered_at, coalesce(array_position($1::text[], currency), 0)::int2, has_snapshot
FROM attribution_batch ORDER BY idx
"""
_ORDER_ROW = binary_copy.row_type(
    [("idx", "int4"), ("ordered_at", "timestamptz"), ("currency", "int2"), ("has_snapshot", "bool")]
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

# Paths in canonical order (time, fixed channel order, touchpoint id). A touchpoint classified
# by rules no longer in force comes back as channel -1.
_PATHS_COPY_SQL = """
SELECT b.idx, t.occurred_at,
       (CASE WHEN t.rules_version = $3 THEN coalesce(array_position($2::text[], t.channel), 0) - 1
             ELSE -1 END)::int2 AS channel
FROM attribution_batch b
CROSS JOIN LATERAL (
    SELECT occurred_at, channel, rules_version, touchpoint_id FROM touchpoints
    WHERE tenant_id = $1 AND visitor_id = b.visitor_id AND is_visit
      AND occurred_at BETWEEN b.ordered_at - $4::interval AND b.ordered_at OFFSET 0) AS t
WHERE b.has_snapshot AND b.visitor_id IS NOT NULL
ORDER BY b.idx, t.occurred_at, channel, t.touchpoint_id COLLATE "C"
"""
_PATH_ROW = binary_copy.row_type([("idx", "int4"), ("at", "timestamptz"), ("channel", "int2")])

_STALE_TOUCHPOINTS_SQL = """
SELECT t.touchpoint_id, t.hints FROM attribution_batch b
JOIN touchpoints t ON t.tenant_id = $1 AND t.visitor_id = b.visitor_id
WHERE b.idx = ANY($2::integer[]) AND t.is_visit
  AND (t.rules_version IS DISTINCT FROM $3 OR t.channel IS NULL)
"""

_RECLASSIFY_SQL = """
UPDATE touchpoints t SET channel = v.channel, rules_version = $4
FROM unnest($2::text[], $3::text[]) AS v(touchpoint_id, channel)
WHERE t.tenant_id = $1 AND t.touchpoint_id = v.touchpoint_id
"""

# The hints of orders whose path is their own landing page (no touchpoint in the window).
_LANDING_HINTS_SQL = """
SELECT b.idx, o.hints FROM attribution_batch b
JOIN orders o ON o.tenant_id = $1 AND o.order_id = b.order_id
WHERE b.idx = ANY($2::integer[])
"""

# What the batch's orders added to the daily channel report before (to take it back).
_PREVIOUS_SQL = """
SELECT a.day - date '2000-01-01' AS day, a.currency, array_to_string(a.models, ',') AS models,
       array_to_string(a.channels, ',') AS channels, a.credits
FROM attribution_batch b JOIN order_attributions a ON a.tenant_id = $1 AND a.order_id = b.order_id
WHERE b.has_snapshot
"""

_TENANT_SQL = """
SELECT reporting_currency, lookback_days, half_life_days FROM tenants WHERE tenant_id = $1
"""

_LATEST_WEIGHTS_SQL = """
SELECT DISTINCT ON (model) model, version, weights FROM model_weights
WHERE tenant_id = $1 ORDER BY model, version DESC
"""

_RULES_SQL = """
SELECT version, document FROM channel_rule_sets WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1
"""

_RATES_SQL = """
SELECT day, base, rate FROM fx_rates
WHERE quote = $1 AND (day, base) IN (SELECT * FROM unnest($2::date[], $3::text[]))
"""

_ROW = (("idx", "int4"), ("revenue_minor", "int8"), ("gross_minor", "int8"), ("channel_set", "int4"))

_UPSERT_ROWS_SQL = """
INSERT INTO order_attributions AS a (tenant_id, order_id, day, currency, revenue_minor,
    gross_minor, visitor_id, reporting_currency, fx_rate, fx_factor, models, model_versions,
    channels, credits, computed_at)
SELECT $1, b.order_id, (b.ordered_at AT TIME ZONE 'UTC')::date, b.currency, r.revenue_minor,
       r.gross_minor, b.visitor_id, $2, fx.rate, fx.factor, $3::text[], $4::integer[],
       string_to_array(s.channels, ','), r.credits, now()
FROM attribution_rows r
JOIN attribution_batch b ON b.idx = r.idx
JOIN unnest($9::integer[], $10::text[]) AS s(channel_set, channels) ON s.channel_set = r.channel_set
LEFT JOIN unnest($5::date[], $6::text[], $7::numeric[], $8::numeric[]) AS fx(day, currency, rate, factor)
       ON fx.day = (b.ordered_at AT TIME ZONE 'UTC')::date AND fx.currency = b.currency
ON CONFLICT (tenant_id, order_id) DO UPDATE SET
    day = EXCLUDED.day, currency = EXCLUDED.currency, revenue_minor = EXCLUDED.revenue_minor,
    gross_minor = EXCLUDED.gross_minor, visitor_id = EXCLUDED.visitor_id,
    reporting_currency = EXCLUDED.reporting_currency, fx_rate = EXCLUDED.fx_rate,
    fx_factor = EXCLUDED.fx_factor, models = EXCLUDED.models,
    model_versions = EXCLUDED.model_versions, channels = EXCLUDED.channels,
    credits = EXCLUDED.credits, computed_at = EXCLUDED.computed_at
"""

_CHANNEL_DAILY_SQL = """
INSERT INTO channel_daily AS c (tenant_id, day, currency, model, channel, revenue_minor,
    refunds_minor, net_minor, orders, refreshed_at)
SELECT $1, v.day, v.currency, v.model, v.channel, v.revenue, v.refunds, v.net, v.orders, now()
FROM unnest($2::date[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bigint[])
     AS v(day, currency, model, channel, revenue, refunds, net, orders)
ON CONFLICT (tenant_id, model, day, currency, channel) DO UPDATE SET
    revenue_minor = c.revenue_minor + EXCLUDED.revenue_minor,
    refunds_minor = c.refunds_minor + EXCLUDED.refunds_minor,
    net_minor = c.net_minor + EXCLUDED.net_minor,
    orders = c.orders + EXCLUDED.orders,
    refreshed_at = EXCLUDED.refreshed_at
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

# Currencies as small integers in COPY rows (index + 1 into this list; 0: none).
_CURRENCIES = tuple(sorted(money.MINOR_UNIT_EXPONENTS))
_PG_EPOCH_DAY = date(2000, 1, 1).toordinal()
_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class RecomputeOutcome:
    batches: int
    orders: int
    # True when the batch limit stopped the run with orders still pending.
    more_pending: bool


def lock_key(tenant_id: uuid.UUID) -> int:
    """A stable signed 64-bit advisory lock key per tenant."""
    return int.from_bytes(tenant_id.bytes[:8], "big", signed=True)


@dataclass(frozen=True)
class TenantAttribution:
    """What a tenant's orders are attributed with: rules, windows and learned weights."""

    reporting_currency: str
    lookback: timedelta
    half_life: timedelta
    rules_version: int
    rule_set: RuleSet
    learned: dict[str, dict[str, float]]  # model -> channel -> weight
    learned_versions: dict[str, int]

    @property
    def models(self) -> tuple[str, ...]:
        return RULE_BASED_MODELS + tuple(m for m in DATA_DRIVEN_MODELS if m in self.learned)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel the rules can give, in the fixed channel order."""
        return tuple(sorted(self.rule_set.channels, key=channel_sort_key))

    def classify(self, hints) -> str:
        return self.rule_set.classify(hints)

    def version(self, model: str) -> int:
        return self.learned_versions.get(model, MODEL_VERSION.get(model, 1))

    @functools.cached_property
    def settings(self) -> Settings:
        return Settings(self.channels, self.half_life, self.models, self.learned)


def path_credits(
    path: Sequence[Touchpoint],
    ordered_at: datetime,
    amounts: Sequence[int],
    is_sale: Sequence[bool],
    tenant: TenantAttribution,
) -> dict[str, tuple[list[int], list[int]]]:
    """Per model, each touchpoint's (net, sales-only) credit along one order's canonical path."""
    return reference_credits(path, ordered_at, amounts, is_sale, tenant.settings)


@functools.lru_cache(maxsize=256)
def _rule_set(document: bytes) -> RuleSet:
    """Compiled once per distinct document, so its classification caches outlive a batch."""
    return RuleSet.from_resolved(orjson.loads(document))


async def rules_in_force(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> tuple[int, object]:
    """(version, classify) of the tenant's channel rules; version 0 is the default rules."""
    rules = await conn.fetchrow(_RULES_SQL, tenant_id)
    if rules is None:
        return 0, default_rule_set().classify
    document = orjson.dumps(rules["document"], option=orjson.OPT_SORT_KEYS)
    return rules["version"], _rule_set(document).classify


async def load_tenant_attribution(
    conn: asyncpg.Connection, tenant_id: uuid.UUID
) -> TenantAttribution:
    tenant = await conn.fetchrow(_TENANT_SQL, tenant_id)
    rules = await conn.fetchrow(_RULES_SQL, tenant_id)
    learned = await conn.fetch(_LATEST_WEIGHTS_SQL, tenant_id)
    rule_set = (
        _rule_set(orjson.dumps(rules["document"], option=orjson.OPT_SORT_KEYS))
        if rules
        else default_rule_set()
    )
    return TenantAttribution(
        reporting_currency=tenant["reporting_currency"],
        lookback=timedelta(days=tenant["lookback_days"]),
        half_life=timedelta(days=float(tenant["half_life_days"])),
        rules_version=rules["version"] if rules else 0,
        rule_set=rule_set,
        learned={r["model"]: r["weights"] for r in learned if r["weights"]},
        learned_versions={r["model"]: r["version"] for r in learned},
    )


def fx_factor(rate: Decimal, currency: str, reporting_currency: str) -> Decimal:
    """Reporting minor units per minor unit of `currency` (exponents may differ: JPY vs USD)."""
    return rate.scaleb(money.exponent(reporting_currency) - money.exponent(currency))


async def start_run(pool: asyncpg.Pool, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Record the job and clear the debounce flag, so later events queue a new chain; jobs of
    the tenant left running by a dead worker are marked abandoned first."""
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute("SELECT abandon_dead_recompute_jobs($1)", tenant_id)
        await conn.execute(
            "UPDATE chain_state SET queued_at = NULL, last_started_at = now() WHERE tenant_id = $1",
            tenant_id,
        )
        await conn.execute(
            "INSERT INTO recompute_jobs AS j (tenant_id, job_id, status) VALUES ($1, $2, 'running')"
            " ON CONFLICT (tenant_id, job_id) DO UPDATE SET run_count = j.run_count + 1,"
            " status = 'running', started_at = now(), finished_at = NULL, error = NULL",
            tenant_id,
            job_id,
        )


async def finish_run(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    outcome: RecomputeOutcome | None,
    error: str | None = None,
) -> None:
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(
            "UPDATE recompute_jobs SET status = $3, finished_at = now(),"
            " duration_ms = (extract(epoch FROM now() - started_at) * 1000)::integer,"
            " batches = $4, orders_processed = $5, error = $6 WHERE tenant_id = $1 AND job_id = $2",
            tenant_id,
            job_id,
            "failed" if error else "succeeded",
            outcome.batches if outcome else 0,
            outcome.orders if outcome else 0,
            error[:500] if error else None,
        )
        await conn.execute(
            "UPDATE chain_state SET last_finished_at = now() WHERE tenant_id = $1", tenant_id
        )


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
    status = await conn.execute(_TAKE_BATCH_SQL, tenant_id, batch_size)
    return int(status.rsplit(" ", 1)[-1])


async def _write_batch(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    """Attribute the batch taken, and clear the pending marks of orders not changed since."""
    orders = await _copy_out(conn, _ORDERS_COPY_SQL, _ORDER_ROW, list(_CURRENCIES))
    uncounted: list[int] = []
    if orders["has_snapshot"].any():
        tenant = await load_tenant_attribution(conn, tenant_id)
        uncounted = await _attribute(conn, tenant_id, tenant, orders)
    await conn.execute(_MARK_REVENUE_REPORT_SQL, tenant_id, uncounted)
    await conn.execute(_CLEAR_PENDING_SQL, tenant_id)


async def _copy_out(conn: asyncpg.Connection, query: str, dtype: np.dtype, *args) -> np.ndarray:
    buffer = io.BytesIO()
    await conn.copy_from_query(query, *args, output=buffer, format="binary")
    return binary_copy.read(buffer.getbuffer(), dtype)


async def _attribute(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, orders: np.ndarray
) -> list[int]:
    """Write the batch's rows and report changes; the orders whose entries the daily revenue
    report has not counted as they now stand."""
    count = len(orders)
    ordered_us = orders["ordered_at"].astype(np.int64)
    paths = await _paths(conn, tenant_id, tenant)
    entries = await _copy_out(conn, _ENTRIES_COPY_SQL, _ENTRY_ROW, tenant_id)
    batch = await _batch(conn, tenant_id, tenant, orders, paths, entries)
    credits = allocate_batch(batch, tenant.settings)
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
    channel_sets, set_names = _channel_sets(packed, tenant.channels, attributed)
    by_order = GroupSums(batch.entry_order, count)
    revenue = by_order(batch.entry_amount)
    gross = by_order(np.where(batch.entry_is_sale, batch.entry_amount, 0))
    days = (ordered_us // _DAY_US).astype(np.int64)
    currency = orders["currency"].astype(np.int64)
    changes = ChannelDayChanges.empty()
    group_keys, order_group = np.unique(days * 1024 + currency, return_inverse=True)
    groups = [_group(int(key)) for key in group_keys.tolist()]
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
    # Read before the rows are replaced.
    await _take_back_previous(conn, tenant_id, changes)
    stream = _rows_stream(packed, attributed, revenue, gross, channel_sets, len(models))
    await conn.copy_to_table("attribution_rows", source=io.BytesIO(stream), format="binary")

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
    )

    report = changes.rows()
    if report:
        await conn.execute(
            _CHANNEL_DAILY_SQL, tenant_id, *(list(column) for column in zip(*report, strict=True))
        )
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


def _group(key: int) -> tuple[date, str]:
    """(UTC day, currency) from a day number (since 2000-01-01) * 1024 + currency index."""
    day, currency = divmod(key, 1024)
    return date.fromordinal(_PG_EPOCH_DAY + day), _CURRENCIES[currency - 1]


def _channel_sets(
    packed, channels: Sequence[str], attributed: np.ndarray
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


def _rows_stream(
    packed,
    attributed: np.ndarray,
    revenue: np.ndarray,
    gross: np.ndarray,
    channel_sets: np.ndarray,
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
        rows["channel_set"] = channel_sets[members]
        pairs = packed.first[members][:, None] + np.arange(width)[None, :]
        rows["credits"] = packed.values[pairs].reshape(len(members), -1)
        parts.append(rows.tobytes())
    parts.append(binary_copy.TRAILER)
    return b"".join(parts)


async def _take_back_previous(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, changes: ChannelDayChanges
) -> None:
    """Subtract what the orders' previous rows added to the daily channel report."""
    previous = await conn.fetch(_PREVIOUS_SQL, tenant_id)
    if not previous:
        return
    for models in {r["models"] for r in previous}:
        rows = [r for r in previous if r["models"] == models]
        model_names = models.split(",")
        currencies = sorted({r["currency"] for r in rows})
        group_of = np.array(
            [r["day"] * 1024 + currencies.index(r["currency"]) for r in rows], dtype=np.int64
        )
        # Rows grouped by their channel list, so each list is split once, not once per row.
        lists, list_of = np.unique([r["channels"] for r in rows], return_inverse=True)
        names = sorted({name for joined in lists.tolist() for name in joined.split(",")})
        codes = [np.array([names.index(n) for n in joined.split(",")]) for joined in lists.tolist()]
        by_list = np.argsort(list_of, kind="stable")
        credits = b"".join(rows[i]["credits"] for i in by_list.tolist())
        widths = np.array([len(c) for c in codes])[list_of[by_list]]
        pair_channel = np.concatenate(
            [np.tile(codes[k], int((list_of == k).sum())) for k in range(len(lists))]
        )
        group_keys, group_index = np.unique(group_of[by_list], return_inverse=True)
        groups = [
            (date.fromordinal(_PG_EPOCH_DAY + int(key) // 1024), currencies[int(key) % 1024])
            for key in group_keys.tolist()
        ]
        changes.add(
            groups,
            np.repeat(group_index, widths),
            pair_channel,
            names,
            model_names,
            unpack(credits, len(model_names), len(pair_channel)),
            -1,
        )


async def _paths(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution
) -> np.ndarray:
    """The stored touchpoints of every order's path, as COPY rows (index, time, channel);
    touchpoints classified by older rules are classified again first."""
    arguments = (tenant_id, list(tenant.channels), tenant.rules_version, tenant.lookback)
    for _attempt in range(2):
        paths = await _copy_out(conn, _PATHS_COPY_SQL, _PATH_ROW, *arguments)
        stale = paths["channel"] < 0
        if not stale.any():
            return paths
        await _reclassify(conn, tenant_id, tenant, np.unique(paths["idx"][stale]).tolist())
    raise RuntimeError("touchpoints stayed unclassified after reclassification")


async def _reclassify(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, orders: list[int]
) -> None:
    stale = await conn.fetch(_STALE_TOUCHPOINTS_SQL, tenant_id, orders, tenant.rules_version)
    await reclassify(conn, tenant_id, tenant, stale)


async def reclassify(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, stale: list
) -> None:
    """Store the channel of each (touchpoint_id, hints) row under the rules in force."""
    if not stale:
        return
    await conn.execute(
        _RECLASSIFY_SQL,
        tenant_id,
        [r["touchpoint_id"] for r in stale],
        [tenant.classify(hints_from_document(r["hints"])) for r in stale],
        tenant.rules_version,
    )


async def _batch(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    tenant: TenantAttribution,
    orders: np.ndarray,
    paths: np.ndarray,
    entries: np.ndarray,
) -> Batch:
    """Paths and entries as arrays; an order with no touchpoint in its window gets its own
    landing page (its hints) as its one touchpoint."""
    count = len(orders)
    order_index = paths["idx"].astype(np.int64)
    channel = paths["channel"].astype(np.int64)
    age = orders["ordered_at"].astype(np.int64)[order_index] - paths["at"].astype(np.int64)
    counts = np.bincount(order_index, minlength=count)
    landing = np.flatnonzero((counts == 0) & orders["has_snapshot"])
    if len(landing):
        codes = {name: code for code, name in enumerate(tenant.channels)}
        hints = {
            r["idx"]: r["hints"]
            for r in await conn.fetch(_LANDING_HINTS_SQL, tenant_id, landing.tolist())
        }
        landing_channel = np.array(
            [codes[tenant.classify(hints_from_document(hints[i]))] for i in landing.tolist()],
            dtype=np.int64,
        )
        order_index = np.concatenate([order_index, landing])
        channel = np.concatenate([channel, landing_channel])
        age = np.concatenate([age, np.zeros(len(landing), dtype=np.int64)])
        by_order = np.argsort(order_index, kind="stable")
        order_index, channel, age = order_index[by_order], channel[by_order], age[by_order]
        counts = np.bincount(order_index, minlength=count)
    # Orders with no snapshot are not attributed; they get an empty stand-in path entry so
    # every order has one, and no entries (nothing is allocated or written for them).
    unattributed = np.flatnonzero(~orders["has_snapshot"])
    if len(unattributed):
        order_index = np.concatenate([order_index, unattributed])
        channel = np.concatenate([channel, np.zeros(len(unattributed), dtype=np.int64)])
        age = np.concatenate([age, np.zeros(len(unattributed), dtype=np.int64)])
        by_order = np.argsort(order_index, kind="stable")
        order_index, channel, age = order_index[by_order], channel[by_order], age[by_order]
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
    )


async def _rates(
    conn: asyncpg.Connection, days: np.ndarray, currencies: np.ndarray, reporting: str
) -> tuple[list, list, list, list]:
    """Per (day, currency) of the batch, the rate into the reporting currency on that day
    (1 for the reporting currency itself); pairs with no known rate are left out."""
    pairs = sorted({_group(int(key)) for key in np.unique(days * 1024 + currencies).tolist()})
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
