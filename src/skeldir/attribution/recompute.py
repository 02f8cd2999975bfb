"""Attribute a tenant's pending orders, batch by batch, serialised per tenant.

A batch reads its pending orders with the version they were marked at, their paths (stored
touchpoints, classified once by the rules in force), allocates every model for the whole batch
at once (`batch.allocate_batch`), and writes one row per order through COPY and one
INSERT ... SELECT, together with the change to the daily channel report. It clears a pending
mark only if the order was not changed meanwhile; a changed order stays pending for the next
batch.
"""

from __future__ import annotations

import functools
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import numpy as np
import orjson

from skeldir import money
from skeldir.attribution.batch import Batch, Settings, allocate_batch, reference_credits
from skeldir.attribution.channel_rules import RuleSet, default_rule_set
from skeldir.attribution.channels import channel_sort_key
from skeldir.attribution.models import MODEL_VERSION, RULE_BASED_MODELS, Touchpoint
from skeldir.attribution.packing import ChannelDayChanges, pack, unpack
from skeldir.db import tenant_transaction
from skeldir.ingestion.hints import hints_from_document

DATA_DRIVEN_MODELS = ("markov", "shapley")

_PENDING_BATCH_SQL = """
SELECT p.order_id, p.order_version, o.has_snapshot, o.currency, o.ordered_at, o.hints,
       -- The visitor, in order of trust: checkout token, cart token, the order's own visitor
       -- id, the customer reference (each matched by its stitch key).
       coalesce(
           (SELECT t.visitor_id FROM touchpoints t WHERE t.tenant_id = p.tenant_id
              AND t.checkout_key = o.checkout_key ORDER BY t.occurred_at DESC LIMIT 1),
           (SELECT t.visitor_id FROM touchpoints t WHERE t.tenant_id = p.tenant_id
              AND t.cart_key = o.cart_key ORDER BY t.occurred_at DESC LIMIT 1),
           o.visitor_id,
           (SELECT t.visitor_id FROM touchpoints t WHERE t.tenant_id = p.tenant_id
              AND t.customer_key = o.customer_key ORDER BY t.occurred_at DESC LIMIT 1)
       ) AS visitor_id,
       coalesce((SELECT array_agg(e.amount_minor ORDER BY e.kind <> 'sale', e.occurred_at,
                                  e.external_entry_id)
                 FROM revenue_entries e
                 WHERE e.tenant_id = p.tenant_id AND e.order_id = p.order_id), '{}') AS amounts,
       (SELECT count(*) FROM revenue_entries e WHERE e.tenant_id = p.tenant_id
          AND e.order_id = p.order_id AND e.kind = 'sale')::integer AS sales,
       a.day AS old_day, a.currency AS old_currency, a.models AS old_models,
       a.channels AS old_channels, a.credits AS old_credits
FROM pending_orders p
JOIN orders o ON o.tenant_id = p.tenant_id AND o.order_id = p.order_id
LEFT JOIN order_attributions a ON a.tenant_id = p.tenant_id AND a.order_id = p.order_id
WHERE p.tenant_id = $1
ORDER BY p.marked_at
LIMIT $2
"""

# The batch's paths in canonical order (time, fixed channel order, touchpoint id), streamed in
# COPY's binary format: fixed-width rows NumPy reads without a Python object per touchpoint.
# A touchpoint classified by rules no longer in force comes back as channel -1.
_PATHS_COPY_SQL = """
SELECT b.idx, t.occurred_at,
       (CASE WHEN t.rules_version = $5 THEN coalesce(array_position($4::text[], t.channel), 0) - 1
             ELSE -1 END)::int2
FROM unnest($2::int4[], $3::text[], $6::timestamptz[]) AS b(idx, visitor_id, ordered_at)
JOIN touchpoints t ON t.tenant_id = $1 AND t.visitor_id = b.visitor_id AND t.is_visit
 AND t.occurred_at BETWEEN b.ordered_at - $7::interval AND b.ordered_at
ORDER BY 1, 2, 3, t.touchpoint_id COLLATE "C"
"""
_PATH_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("idx_length", ">i4"),
        ("idx", ">i4"),
        ("at_length", ">i4"),
        ("at", ">i8"),
        ("channel_length", ">i4"),
        ("channel", ">i2"),
    ]
)
_COPY_HEADER = 19  # signature, flags, header extension length
# COPY's binary timestamps count microseconds from 2000-01-01 UTC.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

_STALE_TOUCHPOINTS_SQL = """
SELECT touchpoint_id, hints FROM touchpoints
WHERE tenant_id = $1 AND visitor_id = ANY($2::text[]) AND is_visit
  AND (rules_version IS DISTINCT FROM $3 OR channel IS NULL)
"""

_RECLASSIFY_SQL = """
UPDATE touchpoints t SET channel = v.channel, rules_version = $4
FROM unnest($2::text[], $3::text[]) AS v(touchpoint_id, channel)
WHERE t.tenant_id = $1 AND t.touchpoint_id = v.touchpoint_id
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

_ROWS_TABLE_SQL = """
CREATE TEMPORARY TABLE IF NOT EXISTS attribution_rows (
    order_id uuid, day date, currency text, revenue_minor bigint, gross_minor bigint,
    visitor_id text, channels text, credits bytea
) ON COMMIT DELETE ROWS
"""
_ROW_COLUMNS = (
    "order_id",
    "day",
    "currency",
    "revenue_minor",
    "gross_minor",
    "visitor_id",
    "channels",
    "credits",
)

_UPSERT_ROWS_SQL = """
INSERT INTO order_attributions AS a (tenant_id, order_id, day, currency, revenue_minor,
    gross_minor, visitor_id, reporting_currency, fx_rate, fx_factor, models, model_versions,
    channels, credits, computed_at)
SELECT $1, r.order_id, r.day, r.currency, r.revenue_minor, r.gross_minor, r.visitor_id, $2,
       fx.rate, fx.factor, $3::text[], $4::integer[], string_to_array(r.channels, ','),
       r.credits, now()
FROM attribution_rows r
LEFT JOIN unnest($5::date[], $6::text[], $7::numeric[], $8::numeric[])
     AS fx(day, currency, rate, factor) ON fx.day = r.day AND fx.currency = r.currency
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

# The daily revenue report counts entries at the order's stamped rate: orders whose entries
# it has not counted as they now stand (new entries, a rate stamped or changed) need its refresh.
_MARK_REVENUE_REPORT_SQL = """
INSERT INTO report_dirty_orders (tenant_id, order_id)
SELECT DISTINCT $1::uuid, e.order_id
FROM attribution_rows r
JOIN order_attributions a ON a.tenant_id = $1 AND a.order_id = r.order_id
JOIN revenue_entries e ON e.tenant_id = $1 AND e.order_id = r.order_id
WHERE e.reported_amount_minor IS DISTINCT FROM e.amount_minor
   OR e.reported_converted IS DISTINCT FROM (a.fx_factor IS NOT NULL)
   OR e.reported_reporting_minor IS DISTINCT FROM coalesce(round(e.amount_minor * a.fx_factor)::bigint, 0)
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()
"""

# Orders with no snapshot yet (a refund came first) have no path: their entries still count
# in the daily revenue report, in their own currency.
_MARK_UNATTRIBUTED_SQL = """
INSERT INTO report_dirty_orders (tenant_id, order_id)
SELECT $1, unnest($2::uuid[])
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()
"""

_CLEAR_PENDING_SQL = """
DELETE FROM pending_orders p
USING unnest($2::uuid[], $3::bigint[]) AS v(order_id, order_version)
WHERE p.tenant_id = $1 AND p.order_id = v.order_id AND p.order_version = v.order_version
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
    return RuleSet.from_document(orjson.loads(document))


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
    """Record the job and clear the debounce flag, so later events queue a new chain."""
    async with tenant_transaction(pool, tenant_id) as conn:
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
    pool: asyncpg.Pool, tenant_id: uuid.UUID, *, batch_size: int, max_batches: int = 200
) -> RecomputeOutcome:
    batches = orders = 0
    while batches < max_batches:
        async with tenant_transaction(pool, tenant_id) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(tenant_id))
            rows = await conn.fetch(_PENDING_BATCH_SQL, tenant_id, batch_size)
            if not rows:
                return RecomputeOutcome(batches, orders, more_pending=False)
            await _write_batch(conn, tenant_id, rows)
        batches += 1
        orders += len(rows)
    return RecomputeOutcome(batches, orders, more_pending=True)


async def _write_batch(conn: asyncpg.Connection, tenant_id: uuid.UUID, rows: list) -> None:
    tenant = await load_tenant_attribution(conn, tenant_id)
    attributed = [row for row in rows if row["has_snapshot"]]
    unattributed = [row["order_id"] for row in rows if not row["has_snapshot"]]
    if attributed:
        await _attribute(conn, tenant_id, tenant, attributed)
    if unattributed:
        await conn.execute(_MARK_UNATTRIBUTED_SQL, tenant_id, unattributed)
    await conn.execute(
        _CLEAR_PENDING_SQL,
        tenant_id,
        [row["order_id"] for row in rows],
        [row["order_version"] for row in rows],
    )


async def _attribute(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, rows: list
) -> None:
    channels = tenant.channels
    ordered_us = np.array(
        [(row["ordered_at"] - _PG_EPOCH) // _MICROSECOND for row in rows], dtype=np.int64
    )
    paths = await _paths(conn, tenant_id, tenant, rows)
    batch = _batch(rows, paths, ordered_us, tenant)
    credits = allocate_batch(batch, tenant.settings)
    models = tenant.models
    tp_order = np.repeat(np.arange(len(rows)), np.diff(batch.offsets))
    packed = pack(
        len(rows),
        tp_order,
        batch.channel,
        [credits.net[m] for m in models],
        [credits.gross[m] for m in models],
    )

    days = [row["ordered_at"].astimezone(timezone.utc).date() for row in rows]
    revenue = np.bincount(batch.entry_order, weights=batch.entry_amount, minlength=len(rows))
    gross = np.bincount(
        batch.entry_order[batch.entry_is_sale],
        weights=batch.entry_amount[batch.entry_is_sale],
        minlength=len(rows),
    )
    names = np.array(channels, dtype=object)
    encoded = packed.encoded()
    records = [
        (
            row["order_id"],
            days[i],
            row["currency"],
            int(revenue[i]),
            int(gross[i]),
            row["visitor_id"],
            ",".join(names[packed.channels(i)]),
            encoded[i],
        )
        for i, row in enumerate(rows)
    ]
    await conn.execute(_ROWS_TABLE_SQL)
    await conn.copy_records_to_table("attribution_rows", records=records, columns=_ROW_COLUMNS)
    rates = await _rates(conn, rows, days, tenant.reporting_currency)
    await conn.execute(
        _UPSERT_ROWS_SQL,
        tenant_id,
        tenant.reporting_currency,
        list(models),
        [tenant.version(m) for m in models],
        *rates,
    )
    changes = ChannelDayChanges.empty()
    groups: dict[tuple, int] = {}
    order_group = np.array(
        [groups.setdefault((days[i], row["currency"]), len(groups)) for i, row in enumerate(rows)],
        dtype=np.int64,
    )
    pair_order = np.repeat(np.arange(len(rows)), np.diff(packed.first))
    changes.add(
        list(groups), order_group[pair_order], packed.pair_channel, channels, models,
        packed.values, 1,
    )
    _take_back_old(changes, rows)
    report = changes.rows()
    if report:
        await conn.execute(
            _CHANNEL_DAILY_SQL, tenant_id, *(list(column) for column in zip(*report, strict=True))
        )
    await conn.execute(_MARK_REVENUE_REPORT_SQL, tenant_id)


def _take_back_old(changes: ChannelDayChanges, rows: list) -> None:
    """Subtract what the orders' previous rows added to the daily channel report."""
    by_models: dict[tuple, list] = {}
    for row in rows:
        if row["old_credits"] is not None:
            by_models.setdefault(tuple(row["old_models"]), []).append(row)
    for models, old in by_models.items():
        groups: dict[tuple, int] = {}
        pair_group, pair_channel, blocks = [], [], []
        names: dict[str, int] = {}
        for row in old:
            group = groups.setdefault((row["old_day"], row["old_currency"]), len(groups))
            pair_group.extend([group] * len(row["old_channels"]))
            pair_channel.extend(names.setdefault(c, len(names)) for c in row["old_channels"])
            blocks.append(row["old_credits"])
        values = unpack(b"".join(blocks), len(models), len(pair_group))
        changes.add(
            list(groups),
            np.array(pair_group, dtype=np.int64),
            np.array(pair_channel, dtype=np.int64),
            list(names),
            models,
            values,
            -1,
        )


async def _paths(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, rows: list
) -> np.ndarray:
    """The stored touchpoints of every order's path, as COPY rows (index, time, channel);
    touchpoints classified by older rules are classified again first."""
    stitched = [(i, row) for i, row in enumerate(rows) if row["visitor_id"]]
    if not stitched:
        return np.zeros(0, dtype=_PATH_ROW)
    arguments = (
        tenant_id,
        [i for i, _ in stitched],
        [row["visitor_id"] for _, row in stitched],
        list(tenant.channels),
        tenant.rules_version,
        [row["ordered_at"] for _, row in stitched],
        tenant.lookback,
    )
    for _attempt in range(2):
        buffer = io.BytesIO()
        await conn.copy_from_query(_PATHS_COPY_SQL, *arguments, output=buffer, format="binary")
        data = buffer.getbuffer()[_COPY_HEADER:-2]
        paths = np.frombuffer(data, dtype=_PATH_ROW)
        stale = paths["channel"] < 0
        if not stale.any():
            return paths
        visitors = sorted({rows[int(i)]["visitor_id"] for i in paths["idx"][stale]})
        await _reclassify(conn, tenant_id, tenant, visitors)
    raise RuntimeError("touchpoints stayed unclassified after reclassification")


async def _reclassify(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, tenant: TenantAttribution, visitors: list
) -> None:
    stale = await conn.fetch(_STALE_TOUCHPOINTS_SQL, tenant_id, visitors, tenant.rules_version)
    await conn.execute(
        _RECLASSIFY_SQL,
        tenant_id,
        [r["touchpoint_id"] for r in stale],
        [tenant.classify(hints_from_document(r["hints"])) for r in stale],
        tenant.rules_version,
    )


def _batch(rows: list, paths: np.ndarray, ordered_us: np.ndarray, tenant: TenantAttribution) -> Batch:
    """Paths and entries as arrays; an order with no touchpoint in its window gets its own
    landing page (its hints) as its one touchpoint."""
    order_index = paths["idx"].astype(np.int64)
    channel = paths["channel"].astype(np.int64)
    age = ordered_us[order_index] - paths["at"].astype(np.int64)
    counts = np.bincount(order_index, minlength=len(rows))
    landing = np.flatnonzero(counts == 0)
    if len(landing):
        codes = {name: code for code, name in enumerate(tenant.channels)}
        landing_channel = np.array(
            [codes[tenant.classify(hints_from_document(rows[i]["hints"]))] for i in landing.tolist()],
            dtype=np.int64,
        )
        order_index = np.concatenate([order_index, landing])
        channel = np.concatenate([channel, landing_channel])
        age = np.concatenate([age, np.zeros(len(landing), dtype=np.int64)])
        by_order = np.argsort(order_index, kind="stable")
        order_index, channel, age = order_index[by_order], channel[by_order], age[by_order]
        counts = np.bincount(order_index, minlength=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])

    entry_order, entry_amount, entry_is_sale = [], [], []
    for i, row in enumerate(rows):
        amounts = row["amounts"]
        entry_order.extend([i] * len(amounts))
        entry_amount.extend(amounts)
        entry_is_sale.extend(k < row["sales"] for k in range(len(amounts)))
    return Batch(
        offsets,
        channel,
        age,
        np.array(entry_order, dtype=np.int64),
        np.array(entry_amount, dtype=np.int64),
        np.array(entry_is_sale, dtype=bool),
    )


async def _rates(
    conn: asyncpg.Connection, rows: list, days: list[date], reporting: str
) -> tuple[list, list, list, list]:
    """Per (day, currency) of the batch, the rate into the reporting currency on that day
    (1 for the reporting currency itself); pairs with no known rate are left out."""
    pairs = sorted({(days[i], row["currency"]) for i, row in enumerate(rows)})
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
