"""The chain's tasks converge by themselves: continuations when a task stops at its limit,
retries when the database blips, and the sweeper for whatever is left marked; on real
PostgreSQL, tasks applied eagerly."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from db_helpers import create_tenant, ingest_shopify, order_body

from skeldir.adapters.tasks import reporting as reporting_tasks
from skeldir.adapters.tasks import runtime as task_runtime
from skeldir.adapters.tasks import scheduling
from skeldir.adapters.tasks.celery_app import create_celery
from skeldir.adapters.tasks.runtime import WorkerRuntime
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution import jobs
from skeldir.domains.attribution.recompute import recompute_pending


@pytest.fixture
def worker(database, monkeypatch):
    """A worker runtime over the test database, with the limits each test sets, and a record
    of the chains its tasks publish."""
    runtimes = []
    published: list[uuid.UUID] = []

    def start(**limits) -> WorkerRuntime:
        settings = replace(database, broker_url="memory://", **limits)
        app = create_celery(settings)
        app.set_current()
        rt = WorkerRuntime(settings)
        runtimes.append(rt)
        monkeypatch.setattr(task_runtime, "_runtime", rt)
        monkeypatch.setattr(scheduling, "publish_chain",
                            lambda app, tenant_id, trigger: published.append(tenant_id))
        rt.app, rt.published = app, published
        return rt

    yield start
    for rt in runtimes:
        rt.run(rt.pool.close())
        rt.loop.close()


def count(rt, tenant, table: str) -> int:
    async def query():
        async with tenant_transaction(rt.pool, tenant.tenant_id) as conn:
            return await conn.fetchval(f"SELECT count(*) FROM {table}")
    return rt.run(query())


def swept(rt, stale: float = 3600) -> set[uuid.UUID]:
    rows = rt.run(rt.pool.fetch("SELECT * FROM tenants_needing_recompute($1, $2) AS t(tenant_id)",
                                timedelta(0), timedelta(seconds=stale)))
    return {r["tenant_id"] for r in rows}


def orders(rt, tenant, *numbers: int) -> None:
    for n in numbers:
        assert rt.run(ingest_shopify(rt.pool, tenant, order_body(n))).status == "accepted"


def test_a_refresh_that_gave_up_is_found_by_the_sweeper(database, worker, monkeypatch):
    rt = worker()
    tenant = create_tenant(database)
    orders(rt, tenant, 1, 2)
    rt.run(recompute_pending(rt.pool, tenant.tenant_id, batch_size=10))
    assert count(rt, tenant, "pending_orders") == 0 and count(rt, tenant, "report_dirty_orders") == 2

    async def database_away(*args, **kwargs):
        raise asyncpg.ConnectionDoesNotExistError("connection was closed")

    monkeypatch.setattr(reporting_tasks, "refresh_tenant", database_away)
    result = rt.app.tasks[scheduling.REFRESH_TASK].apply(args=(str(tenant.tenant_id),))
    assert result.failed(), "the refresh gives up after its retries"
    assert tenant.tenant_id in swept(rt), "orders the reports have not counted are swept"

    monkeypatch.undo()
    rt = worker()
    assert rt.app.tasks[scheduling.REFRESH_TASK].apply(args=(str(tenant.tenant_id),)).successful()
    assert count(rt, tenant, "report_dirty_orders") == 0
    assert tenant.tenant_id not in swept(rt)


def test_a_refresh_stopped_by_its_limit_queues_its_continuation(database, worker):
    rt = worker(refresh_batch_size=1, refresh_batches_per_task=2)
    tenant = create_tenant(database)
    orders(rt, tenant, 11, 12, 13)
    rt.run(recompute_pending(rt.pool, tenant.tenant_id, batch_size=10))
    refresh = rt.app.tasks[scheduling.REFRESH_TASK]

    assert refresh.apply(args=(str(tenant.tenant_id),)).successful()
    assert count(rt, tenant, "report_dirty_orders") == 1
    assert rt.published == [tenant.tenant_id], "the rest is queued, not left for the next event"
    rt.run(scheduling.release_claim(rt.pool, tenant.tenant_id))  # the continuation starts
    assert refresh.apply(args=(str(tenant.tenant_id),)).successful()
    assert count(rt, tenant, "report_dirty_orders") == 0
    assert rt.published == [tenant.tenant_id]


def test_a_database_blip_while_finishing_a_run_is_retried(database, worker, monkeypatch):
    rt = worker()
    tenant = create_tenant(database)
    orders(rt, tenant, 21)
    original, failures = jobs.finish_run, []

    async def finish_after_one_blip(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        return await original(*args, **kwargs)

    monkeypatch.setattr(jobs, "finish_run", finish_after_one_blip)
    result = rt.app.tasks[scheduling.RECOMPUTE_TASK].apply(args=(str(tenant.tenant_id),))
    assert result.successful(), result.traceback
    assert failures == [1]
    async def statuses():
        async with tenant_transaction(rt.pool, tenant.tenant_id) as conn:
            return [r["status"] for r in await conn.fetch("SELECT status FROM recompute_jobs")]
    assert rt.run(statuses()) == ["succeeded"]


def test_a_continuation_the_broker_refuses_is_left_to_the_sweeper(database, worker, monkeypatch):
    rt = worker(recompute_batch_size=1, recompute_batches_per_task=1)
    tenant = create_tenant(database)
    orders(rt, tenant, 31, 32)

    def broker_away(app, tenant_id, trigger):
        raise OSError("broker unreachable")

    monkeypatch.setattr(scheduling, "publish_chain", broker_away)
    result = rt.app.tasks[scheduling.RECOMPUTE_TASK].apply(args=(str(tenant.tenant_id),))
    assert result.successful(), "the recompute's work is done; the refresh after it must run"
    assert count(rt, tenant, "pending_orders") == 1
    assert tenant.tenant_id in swept(rt), "the claim is released, so the sweeper can reschedule"


def test_a_small_tenants_new_order_is_attributed_while_a_large_backfill_runs(
    database, worker, monkeypatch
):
    """One worker, one FIFO queue: each recompute task works one slice (here one batch) and
    queues the rest behind the chains already queued, so tenants take turns."""
    rt = worker(recompute_batch_size=2, task_slice_seconds=0)
    big, small = create_tenant(database), create_tenant(database)
    queue: deque[uuid.UUID] = deque()
    monkeypatch.setattr(scheduling, "publish_chain",
                        lambda app, tenant_id, trigger: queue.append(tenant_id))

    def claim_and_queue(tenant) -> None:  # what the API does after an ingest commits
        scheduling.claim_and_publish(rt, rt.app, tenant.tenant_id, trigger="ingest")

    orders(rt, big, *range(100, 120))
    claim_and_queue(big)
    recompute = rt.app.tasks[scheduling.RECOMPUTE_TASK]

    def run_next() -> uuid.UUID:
        tenant_id = queue.popleft()
        assert recompute.apply(args=(str(tenant_id),)).successful()
        return tenant_id

    assert run_next() == big.tenant_id  # the backfill's first slice
    orders(rt, small, 1)
    claim_and_queue(small)
    ran = []
    while queue:
        ran.append(run_next())
        if ran[-1] == small.tenant_id:
            assert count(rt, small, "pending_orders") == 0
            big_left = count(rt, big, "pending_orders")
    assert big_left >= 16, "the small tenant's order waited for one slice of the backfill only"
    assert ran.index(small.tenant_id) <= 1 and ran.count(small.tenant_id) == 1
    assert count(rt, big, "pending_orders") == 0 and len(ran) >= 10
