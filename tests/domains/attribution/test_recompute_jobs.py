"""A killed run's job row does not stay `running`: the next run of its tenant, or the sweeper,
marks it abandoned; a live run's row is never touched."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from db_helpers import ingest_shopify, order_body

from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.jobs import (
    abandon_dead_jobs,
    holding_job_lock,
    job_lock_key,
    run_recompute_job,
    start_run,
)

pytestmark = pytest.mark.anyio


async def statuses(pool, tenant) -> dict[uuid.UUID, str]:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        return {r["job_id"]: r["status"]
                for r in await conn.fetch("SELECT job_id, status FROM recompute_jobs")}


async def killed_run(database, pool, tenant) -> uuid.UUID:
    """A run that recorded its job and then lost its worker: its own session, terminated."""
    job_id = uuid.uuid4()
    conn = await asyncpg.connect(database.database_url)
    await conn.execute("SELECT pg_advisory_lock($1, $2)", *job_lock_key(job_id))
    await start_run(pool, tenant.tenant_id, job_id)
    pid = conn.get_server_pid()
    conn.terminate()
    for _ in range(500):  # the server notices the lost session on its own time
        if not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            return job_id
        await asyncio.sleep(0.01)
    raise AssertionError(f"the killed run's session {pid} is still alive after 5 s")


async def test_the_next_run_marks_a_killed_runs_job_abandoned(database, worker_pool, tenant_factory):
    tenant = tenant_factory()
    await ingest_shopify(worker_pool, tenant, order_body(61))
    dead = await killed_run(database, worker_pool, tenant)
    assert (await statuses(worker_pool, tenant))[dead] == "running"

    later = uuid.uuid4()
    outcome = await run_recompute_job(worker_pool, tenant.tenant_id, later, batch_size=10,
                                      max_batches=10)
    assert outcome.orders == 1
    assert await statuses(worker_pool, tenant) == {dead: "abandoned", later: "succeeded"}


async def test_the_sweeper_abandons_dead_jobs_and_leaves_live_ones(
    database, worker_pool, tenant_factory
):
    quiet, busy = tenant_factory(), tenant_factory()
    dead = await killed_run(database, worker_pool, quiet)  # no later run of its tenant
    live = uuid.uuid4()
    async with holding_job_lock(worker_pool, live):
        await start_run(worker_pool, busy.tenant_id, live)
        assert await abandon_dead_jobs(worker_pool) >= 1
        assert await statuses(worker_pool, quiet) == {dead: "abandoned"}
        assert await statuses(worker_pool, busy) == {live: "running"}
    assert await abandon_dead_jobs(worker_pool) >= 1, "a run whose lock is gone is dead"
    assert await statuses(worker_pool, busy) == {live: "abandoned"}
