"""Attribute a tenant's pending orders, batch by batch, serialised per tenant.

A batch reads pending orders with the version they were marked at, writes every model's
allocation, queues the orders for report refresh, and clears a pending mark only if the
order was not changed meanwhile; a changed order stays pending for the next batch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from skeldir.attribution.channels import classify
from skeldir.attribution.hints import hints_from_document
from skeldir.attribution.models import MODEL_VERSION, Touchpoint, allocate_all, by_channel
from skeldir.db import tenant_transaction

_PENDING_BATCH_SQL = """
SELECT p.order_id, p.order_version, o.has_snapshot, o.currency, o.ordered_at, o.hints,
       coalesce((SELECT sum(e.amount_minor) FROM revenue_entries e
                 WHERE e.tenant_id = p.tenant_id AND e.order_id = p.order_id), 0)::bigint AS net
FROM pending_orders p
JOIN orders o ON o.tenant_id = p.tenant_id AND o.order_id = p.order_id
WHERE p.tenant_id = $1
ORDER BY p.marked_at
LIMIT $2
"""

_UPSERT_ALLOCATION_SQL = """
INSERT INTO attribution_allocations AS a (tenant_id, order_id, model, model_version, currency,
    revenue_minor, channels, credits_minor, computed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
ON CONFLICT (tenant_id, order_id, model) DO UPDATE SET
    model_version = EXCLUDED.model_version, currency = EXCLUDED.currency,
    revenue_minor = EXCLUDED.revenue_minor, channels = EXCLUDED.channels,
    credits_minor = EXCLUDED.credits_minor, computed_at = EXCLUDED.computed_at
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
    credits_minor: tuple[int, ...]


def lock_key(tenant_id: uuid.UUID) -> int:
    """A stable signed 64-bit advisory lock key per tenant."""
    return int.from_bytes(tenant_id.bytes[:8], "big", signed=True)


def allocate_order(hints_document: dict, ordered_at: datetime, revenue_minor: int) -> list[Allocation]:
    """Every model's credits for one order; its own landing hints are its only touchpoint."""
    channel = classify(hints_from_document(hints_document))
    path = [Touchpoint(channel=channel, occurred_at=ordered_at)]
    allocations = []
    for model, credits in allocate_all(path, revenue_minor, ordered_at).items():
        totals = by_channel(credits) or [(channel, 0)]
        allocations.append(
            Allocation(model, tuple(c for c, _ in totals), tuple(m for _, m in totals))
        )
    return allocations


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
        for allocation in allocate_order(row["hints"], row["ordered_at"], row["net"]):
            allocation_rows.append((
                tenant_id, row["order_id"], allocation.model, MODEL_VERSION[allocation.model],
                row["currency"], row["net"], list(allocation.channels),
                list(allocation.credits_minor),
            ))
    if allocation_rows:
        await conn.executemany(_UPSERT_ALLOCATION_SQL, allocation_rows)
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
