"""Attribute a tenant's pending orders, batch by batch, serialised per tenant.

A batch reads pending orders with the version they were marked at, writes every model's
allocation, queues the orders for report refresh, and clears a pending mark only if the
order was not changed meanwhile; a changed order stays pending for the next batch.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import orjson

from skeldir import money
from skeldir.attribution.channel_rules import RuleSet, default_rule_set
from skeldir.attribution.channels import channel_sort_key
from skeldir.attribution.models import MODEL_VERSION, RULE_BASED_MODELS, Touchpoint, allocate_all
from skeldir.attribution.paths import Classifier, order_path
from skeldir.attribution.weighted import weighted_credits
from skeldir.db import tenant_transaction

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
       coalesce((SELECT array_agg(e.amount_minor ORDER BY e.occurred_at, e.external_entry_id)
                 FROM revenue_entries e
                 WHERE e.tenant_id = p.tenant_id AND e.order_id = p.order_id
                   AND e.kind = 'sale'), '{}') AS sales,
       coalesce((SELECT array_agg(e.amount_minor ORDER BY e.occurred_at, e.external_entry_id)
                 FROM revenue_entries e
                 WHERE e.tenant_id = p.tenant_id AND e.order_id = p.order_id
                   AND e.kind <> 'sale'), '{}') AS reversals
FROM pending_orders p
JOIN orders o ON o.tenant_id = p.tenant_id AND o.order_id = p.order_id
WHERE p.tenant_id = $1
ORDER BY p.marked_at
LIMIT $2
"""

_TOUCHPOINTS_SQL = """
SELECT visitor_id, touchpoint_id, occurred_at, hints FROM touchpoints
WHERE tenant_id = $1 AND visitor_id = ANY($2::text[]) AND is_visit AND occurred_at BETWEEN $3 AND $4
"""

_TENANT_SQL = """
SELECT reporting_currency, lookback_days, half_life_days FROM tenants WHERE tenant_id = $1
"""

_LATEST_WEIGHTS_SQL = """
SELECT DISTINCT ON (model) model, version, weights FROM model_weights
WHERE tenant_id = $1 ORDER BY model, version DESC
"""

_RULES_SQL = """
SELECT document FROM channel_rule_sets WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1
"""

_STITCHED_SQL = """
UPDATE orders o SET stitched_visitor_id = v.visitor_id
FROM unnest($2::uuid[], $3::text[]) AS v(order_id, visitor_id)
WHERE o.tenant_id = $1 AND o.order_id = v.order_id
  AND o.stitched_visitor_id IS DISTINCT FROM v.visitor_id
"""

_RATES_SQL = """
SELECT day, base, rate FROM fx_rates
WHERE quote = $1 AND (day, base) IN (SELECT * FROM unnest($2::date[], $3::text[]))
"""

_STAMP_SQL = """
UPDATE orders o SET reporting_currency = v.reporting_currency, fx_rate = v.rate,
       fx_factor = v.factor
FROM unnest($2::uuid[], $3::text[], $4::numeric[], $5::numeric[])
     AS v(order_id, reporting_currency, rate, factor)
WHERE o.tenant_id = $1 AND o.order_id = v.order_id
"""

# One statement per batch: rows arrive as parallel arrays, each row's channels and credits
# as comma-joined text (channel names never hold commas), because SQL arrays cannot be ragged.
_UPSERT_ALLOCATIONS_SQL = """
INSERT INTO attribution_allocations AS a (tenant_id, order_id, model, model_version, currency,
    revenue_minor, channels, credits_minor, gross_credits_minor, computed_at)
SELECT $1, r.order_id, r.model, r.model_version, r.currency, r.revenue_minor,
       string_to_array(r.channels, ','), string_to_array(r.credits, ',')::bigint[],
       string_to_array(r.gross_credits, ',')::bigint[], now()
FROM unnest($2::uuid[], $3::text[], $4::integer[], $5::text[], $6::bigint[], $7::text[],
            $8::text[], $9::text[])
     AS r(order_id, model, model_version, currency, revenue_minor, channels, credits, gross_credits)
ON CONFLICT (tenant_id, order_id, model) DO UPDATE SET
    model_version = EXCLUDED.model_version, currency = EXCLUDED.currency,
    revenue_minor = EXCLUDED.revenue_minor, channels = EXCLUDED.channels,
    credits_minor = EXCLUDED.credits_minor, gross_credits_minor = EXCLUDED.gross_credits_minor,
    computed_at = EXCLUDED.computed_at
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


@dataclass(frozen=True, slots=True)
class Allocation:
    model: str
    channels: tuple[str, ...]
    # Net credits (sales, refunds and cancellations), and the sales' credits alone.
    credits_minor: tuple[int, ...]
    gross_credits_minor: tuple[int, ...]


DATA_DRIVEN_MODELS = ("markov", "shapley")


def lock_key(tenant_id: uuid.UUID) -> int:
    """A stable signed 64-bit advisory lock key per tenant."""
    return int.from_bytes(tenant_id.bytes[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class TenantAttribution:
    """What a tenant's orders are attributed with: rules, windows and learned weights."""

    reporting_currency: str
    lookback: timedelta
    half_life: timedelta
    classify: Classifier
    learned: dict[str, dict[str, float]]  # model -> channel -> weight
    learned_versions: dict[str, int]

    @property
    def models(self) -> tuple[str, ...]:
        return RULE_BASED_MODELS + tuple(m for m in DATA_DRIVEN_MODELS if m in self.learned)

    def version(self, model: str) -> int:
        return self.learned_versions.get(model, MODEL_VERSION.get(model, 1))


def path_credits(
    path: Sequence[Touchpoint],
    ordered_at: datetime,
    sales: Sequence[int],
    reversals: Sequence[int],
    tenant: TenantAttribution,
) -> dict[str, tuple[list[int], list[int]]]:
    """Per model, each touchpoint's (net, sales-only) credit along the canonical `path`.

    Each entry (sale, refund, cancellation) is apportioned with the order's weights on its
    own, so each sums exactly and a refund takes back exactly what its sale gave.
    """
    channels = [touchpoint.channel for touchpoint in path]
    amounts = (*sales, *reversals)
    per_entry = [
        allocate_all(path, amount, ordered_at, half_life=tenant.half_life, lookback=tenant.lookback)
        for amount in amounts
    ]
    result = {}
    for model in tenant.models:
        net, gross = [0] * len(path), [0] * len(path)
        for index, amount in enumerate(amounts):
            if model in RULE_BASED_MODELS:
                parts = [0] * len(path)
                for credit in per_entry[index][model]:
                    parts[credit.touchpoint_index] += credit.minor
            else:
                parts = weighted_credits(channels, tenant.learned[model], amount)
            for position, minor in enumerate(parts):
                net[position] += minor
                if index < len(sales):
                    gross[position] += minor
        result[model] = (net, gross)
    return result


def allocate_order(
    path: Sequence[Touchpoint],
    ordered_at: datetime,
    sales: Sequence[int],
    reversals: Sequence[int],
    tenant: TenantAttribution,
) -> list[Allocation]:
    """Every model's credits for one order, summed per channel."""
    allocations = []
    for model, (net, gross) in path_credits(path, ordered_at, sales, reversals, tenant).items():
        net_by_channel: dict[str, int] = {}
        gross_by_channel: dict[str, int] = {}
        for touchpoint, net_minor, gross_minor in zip(path, net, gross, strict=True):
            net_by_channel[touchpoint.channel] = (
                net_by_channel.get(touchpoint.channel, 0) + net_minor
            )
            gross_by_channel[touchpoint.channel] = (
                gross_by_channel.get(touchpoint.channel, 0) + gross_minor
            )
        credited = [c for c in net_by_channel if net_by_channel[c] or gross_by_channel[c]]
        channels = tuple(sorted(credited, key=channel_sort_key)) or (path[0].channel,)
        allocations.append(
            Allocation(
                model,
                channels,
                tuple(net_by_channel[c] for c in channels),
                tuple(gross_by_channel[c] for c in channels),
            )
        )
    return allocations


@functools.lru_cache(maxsize=256)
def _rule_set(document: bytes) -> RuleSet:
    """Compiled once per distinct document, so its classification caches outlive a batch."""
    return RuleSet.from_document(orjson.loads(document))


async def load_tenant_attribution(
    conn: asyncpg.Connection, tenant_id: uuid.UUID
) -> TenantAttribution:
    tenant = await conn.fetchrow(_TENANT_SQL, tenant_id)
    rules = await conn.fetchval(_RULES_SQL, tenant_id)
    learned = await conn.fetch(_LATEST_WEIGHTS_SQL, tenant_id)
    rule_set = (
        _rule_set(orjson.dumps(rules, option=orjson.OPT_SORT_KEYS)) if rules else default_rule_set()
    )
    return TenantAttribution(
        reporting_currency=tenant["reporting_currency"],
        lookback=timedelta(days=tenant["lookback_days"]),
        half_life=timedelta(days=float(tenant["half_life_days"])),
        classify=rule_set.classify,
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
    journeys = await _journeys(conn, tenant_id, attributed, tenant.lookback)
    allocation_rows = []
    for row in attributed:
        path = order_path(
            journeys.get(row["visitor_id"], ()),
            row["hints"],
            row["ordered_at"],
            tenant.classify,
            tenant.lookback,
        )
        for allocation in allocate_order(
            path, row["ordered_at"], row["sales"], row["reversals"], tenant
        ):
            allocation_rows.append(
                (
                    row["order_id"],
                    allocation.model,
                    tenant.version(allocation.model),
                    row["currency"],
                    sum(allocation.credits_minor),
                    ",".join(allocation.channels),
                    ",".join(map(str, allocation.credits_minor)),
                    ",".join(map(str, allocation.gross_credits_minor)),
                )
            )
    if allocation_rows:
        await conn.execute(
            _UPSERT_ALLOCATIONS_SQL,
            tenant_id,
            *(list(column) for column in zip(*allocation_rows, strict=True)),
        )
        await conn.execute(
            _STITCHED_SQL,
            tenant_id,
            [r["order_id"] for r in attributed],
            [r["visitor_id"] for r in attributed],
        )
        await _stamp_exchange_rates(conn, tenant_id, attributed, tenant.reporting_currency)
        await conn.execute(
            "INSERT INTO report_dirty_orders (tenant_id, order_id) SELECT $1, unnest($2::uuid[])"
            " ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()",
            tenant_id,
            [row["order_id"] for row in attributed],
        )
    await conn.execute(
        _CLEAR_PENDING_SQL,
        tenant_id,
        [row["order_id"] for row in rows],
        [row["order_version"] for row in rows],
    )


async def _journeys(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, rows: list, lookback: timedelta
) -> dict[str, list[tuple[str, datetime, dict]]]:
    """The touchpoints of every visitor the batch's orders were stitched to, in one query."""
    visitors = sorted({row["visitor_id"] for row in rows if row["visitor_id"]})
    if not visitors:
        return {}
    start = min(row["ordered_at"] for row in rows) - lookback
    end = max(row["ordered_at"] for row in rows)
    journeys: dict[str, list[tuple[str, datetime, dict]]] = {}
    for t in await conn.fetch(_TOUCHPOINTS_SQL, tenant_id, visitors, start, end):
        journeys.setdefault(t["visitor_id"], []).append(
            (t["touchpoint_id"], t["occurred_at"], t["hints"])
        )
    return journeys


async def _stamp_exchange_rates(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, rows: list, reporting: str
) -> None:
    """Record each order's rate into the reporting currency on its order day (or none known)."""
    foreign = [row for row in rows if row["currency"] != reporting]
    rates = {}
    if foreign:
        days = [row["ordered_at"].astimezone(timezone.utc).date() for row in foreign]
        found = await conn.fetch(_RATES_SQL, reporting, days, [row["currency"] for row in foreign])
        rates = {(r["day"], r["base"]): r["rate"] for r in found}
    stamps = []
    for row in rows:
        if row["currency"] == reporting:
            rate = Decimal(1)
        else:
            rate = rates.get((row["ordered_at"].astimezone(timezone.utc).date(), row["currency"]))
        factor = fx_factor(rate, row["currency"], reporting) if rate is not None else None
        stamps.append((row["order_id"], reporting, rate, factor))
    await conn.execute(
        _STAMP_SQL, tenant_id, *(list(column) for column in zip(*stamps, strict=True))
    )
