"""The privacy tasks on real PostgreSQL, applied as the worker applies them: the sweep carries
out a request whose task was lost, and the daily retention run ages every tenant's data."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from db_helpers import create_tenant
from skeldir.adapters.tasks import privacy as privacy_tasks
from skeldir.adapters.tasks import runtime as task_runtime
from skeldir.adapters.tasks.celery_app import create_celery
from skeldir.adapters.tasks.runtime import WorkerRuntime
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.privacy import requests
from skeldir.domains.privacy.subjects import Subject


@pytest.fixture
def rt(database, monkeypatch):
    settings = replace(database, broker_url="memory://")
    create_celery(settings).set_current()
    runtime = WorkerRuntime(settings)
    monkeypatch.setattr(task_runtime, "_runtime", runtime)
    yield runtime
    runtime.run(runtime.pool.close())
    runtime.loop.close()


def test_the_sweep_carries_out_a_request_whose_task_was_lost(rt, database):
    tenant = create_tenant(database)

    async def record() -> uuid.UUID:
        async with tenant_transaction(rt.pool, tenant.tenant_id) as conn:
            request_id, _ = await requests.record(
                conn, tenant.tenant_id, kind="erasure", origin="api",
                subject=Subject(visitor_ids=("v-lost",)))
            return request_id

    lost, fresh = rt.run(record()), rt.run(record())
    with owner_connection(database) as conn:
        conn.execute("UPDATE privacy_requests SET received_at = now() - interval '10 minutes'"
                     " WHERE request_id = %s", (lost,))
    assert privacy_tasks.sweep_privacy_requests() >= 1

    async def completed(request_id) -> bool:
        async with tenant_transaction(rt.pool, tenant.tenant_id) as conn:
            return (await requests.get(conn, tenant.tenant_id, request_id)).completed_at is not None

    # The fresh one is left to its own task (it may still be queued).
    assert rt.run(completed(lost)) and not rt.run(completed(fresh))


def test_the_retention_run_ages_every_tenants_touchpoints(rt, database):
    tenants = [create_tenant(database), create_tenant(database)]
    with owner_connection(database) as conn:
        for tenant in tenants:
            conn.execute(
                "INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at)"
                " VALUES (%s, 'old', 'v-old', now() - interval '401 days'),"
                " (%s, 'recent', 'v-recent', now() - interval '399 days')",
                (tenant.tenant_id, tenant.tenant_id))
    removed = privacy_tasks.apply_retention()
    assert removed["touchpoints"] >= 2
    with owner_connection(database) as conn:
        left = conn.execute("SELECT tenant_id, touchpoint_id FROM touchpoints"
                            " WHERE tenant_id = ANY(%s)",
                            ([t.tenant_id for t in tenants],)).fetchall()
    assert sorted(left) == sorted((t.tenant_id, "recent") for t in tenants)
