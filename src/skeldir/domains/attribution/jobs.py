"""A recompute job's run and its liveness.

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

from skeldir.domains.attribution.recompute import (
    RecomputeOutcome,
    finish_run,
    recompute_pending,
    start_run,
)


def job_lock_key(job_id: uuid.UUID) -> tuple[int, int]:
    """The two-integer advisory lock key of a job (a key space apart from the tenant locks);
    `abandon_dead_recompute_jobs` derives the same key from the id in SQL."""
    return (
        int.from_bytes(job_id.bytes[:4], "big", signed=True),
        int.from_bytes(job_id.bytes[4:8], "big", signed=True),
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
