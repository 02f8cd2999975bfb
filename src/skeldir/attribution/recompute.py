"""Attribute a tenant's pending orders, batch by batch, serialised per tenant.

A batch reads pending orders with the version they were marked at, writes every model's
allocation, queues the orders for report refresh, and clears a pending mark only if the
order was not changed meanwhile; a changed order stays pending for the next batch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import asyncpg

from skeldir import money
from skeldir.attribution.channels import channel_sort_key, classify
from skeldir.ingestion.hints import hints_from_document
from skeldir.attribution.models import MODEL_VERSION, RULE_BASED_MODELS, Touchpoint, allocate_all
from skeldir.db import tenant_transaction

_PENDING_BATCH_SQL = """
SELECT p.order_id, p.order_version, o.has_snapshot, o.currency, o.ordered_at, o.hints,
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


def lock_key(tenant_id: uuid.UUID) -> int:
    """A stable signed 64-bit advisory lock key per tenant."""
    return int.from_bytes(tenant_id.bytes[:8], "big", signed=True)


def allocate_order(
    hints_document: dict, ordered_at: datetime, sales: list[int], reversals: list[int]
) -> list[Allocation]:
    """Every model's credits for one order; its own landing hints are its only touchpoint.

    Each entry (sale, refund, cancellation) is apportioned with the order's weights on its
    own, so each sums exactly and a refund takes back exactly what its sale gave a channel.
    """
    channel = classify(hints_from_document(hints_document))
    path = [Touchpoint(channel=channel, occurred_at=ordered_at)]
    per_entry = [allocate_all(path, amount, ordered_at) for amount in (*sales, *reversals)]
    allocations = []
    for model in RULE_BASED_MODELS:
        gross: dict[str, int] = {}
        net: dict[str, int] = {}
        for index, credits in enumerate(per_entry):
            for credit in credits[model]:
                net[credit.channel] = net.get(credit.channel, 0) + credit.minor
                if index < len(sales):
                    gross[credit.channel] = gross.get(credit.channel, 0) + credit.minor
        channels = tuple(sorted(net, key=channel_sort_key)) or (channel,)
        allocations.append(Allocation(
            model, channels,
            tuple(net.get(c, 0) for c in channels), tuple(gross.get(c, 0) for c in channels),
        ))
    return allocations


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
    attributed = [row for row in rows if row["has_snapshot"]]
    allocation_rows = []
    for row in attributed:
        for allocation in allocate_order(row["hints"], row["ordered_at"], row["sales"], row["reversals"]):
            allocation_rows.append((
                row["order_id"], allocation.model, MODEL_VERSION[allocation.model], row["currency"],
                sum(allocation.credits_minor), ",".join(allocation.channels),
                ",".join(map(str, allocation.credits_minor)),
                ",".join(map(str, allocation.gross_credits_minor)),
            ))
    if allocation_rows:
        await conn.execute(
            _UPSERT_ALLOCATIONS_SQL, tenant_id,
            *(list(column) for column in zip(*allocation_rows, strict=True)),
        )
        await _stamp_exchange_rates(conn, tenant_id, attributed)
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


async def _stamp_exchange_rates(conn: asyncpg.Connection, tenant_id: uuid.UUID, rows: list) -> None:
    """Record each order's rate into the reporting currency on its order day (or none known)."""
    reporting = await conn.fetchval("SELECT reporting_currency FROM tenants WHERE tenant_id = $1", tenant_id)
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
    await conn.execute(_STAMP_SQL, tenant_id, *(list(column) for column in zip(*stamps, strict=True)))
