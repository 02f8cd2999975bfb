"""A recompute job: its row (running, then the outcome or the error), its run and its liveness.

A running job holds an advisory lock keyed by its id on a connection of its own for as long as
it runs. A job whose row says `running` but whose lock nobody holds was killed with its worker
(the server releases a dead session's locks), so the next run of its tenant, or the sweeper,
marks it `abandoned`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.recompute import RecomputeOutcome, recompute_pending


def job_lock_key(job_id: uuid.UUID) -> tuple[int, int]:
    """The two-integer advisory lock key of a job (a key space apart from the tenant locks);
    `abandon_dead_recompute_jobs` derives the same key from the id in SQL."""
    return (
        int.from_bytes(job_id.bytes[:4], "big", signed=True),
        int.from_bytes(job_id.bytes[4:8], "big", signed=True),
    )


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


@asynccontextmanager
async def holding_job_lock(pool: asyncpg.Pool, job_id: uuid.UUID) -> AsyncIterator[None]:
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1, $2)", *job_lock_key(job_id))
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1, $2)", *job_lock_key(job_id))


async def run_recompute_job(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    *,
    batch_size: int,
    max_batches: int,
    max_seconds: float | None = None,
) -> RecomputeOutcome:
    """Record the job, attribute pending orders for one slice (`max_batches` batches or
    `max_seconds`), record the outcome; alive (its lock held) from before its row says running until after it does not."""
    async with holding_job_lock(pool, job_id):
        await start_run(pool, tenant_id, job_id)
        outcome = await recompute_pending(
            pool, tenant_id, batch_size=batch_size, max_batches=max_batches,
            max_seconds=max_seconds,
        )
        await finish_run(pool, tenant_id, job_id, outcome)
    return outcome


async def abandon_dead_jobs(pool: asyncpg.Pool) -> int:
    """Mark abandoned every tenant's jobs left running by a worker that died (the sweeper)."""
    return await pool.fetchval("SELECT abandon_dead_recompute_jobs(NULL)")
