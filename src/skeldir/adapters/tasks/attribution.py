"""Task adapter: recompute a tenant's pending orders (ids in, domain code does the work)."""

from __future__ import annotations

import uuid

import asyncpg
from celery import shared_task

from skeldir.adapters.tasks.runtime import runtime
from skeldir.adapters.tasks.scheduling import RECOMPUTE_TASK, claim_and_publish
from skeldir.base.db import DATABASE_UNAVAILABLE_ERRORS
from skeldir.base.observability import metrics
from skeldir.domains.attribution.recompute import finish_run, recompute_pending, start_run

# The server away (restart, failover) or a conflict that a retry resolves.
TRANSIENT_DB_ERRORS = (
    *DATABASE_UNAVAILABLE_ERRORS,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


@shared_task(name=RECOMPUTE_TASK, bind=True, acks_late=True, max_retries=8)
def recompute_window(self, tenant_id: str) -> dict:
    rt = runtime()
    tenant = uuid.UUID(tenant_id)
    job_id = uuid.UUID(self.request.id) if self.request.id else uuid.uuid4()
    try:
        rt.run(start_run(rt.pool, tenant, job_id))
        outcome = rt.run(
            recompute_pending(rt.pool, tenant, batch_size=rt.settings.recompute_batch_size)
        )
    except TRANSIENT_DB_ERRORS as exc:
        _record_failure(rt, tenant, job_id, exc)
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 30))
    except Exception as exc:
        _record_failure(rt, tenant, job_id, exc)
        raise
    rt.run(finish_run(rt.pool, tenant, job_id, outcome))
    metrics.ORDERS_ATTRIBUTED.inc(outcome.orders)
    if outcome.more_pending:
        claim_and_publish(rt, self.app, tenant, trigger="continuation")
    return {"batches": outcome.batches, "orders": outcome.orders}


def _record_failure(rt, tenant: uuid.UUID, job_id: uuid.UUID, exc: BaseException) -> None:
    try:
        rt.run(finish_run(rt.pool, tenant, job_id, None, error=type(exc).__name__))
    except Exception:  # the database may be what failed; the job row then stays 'running'
        pass
