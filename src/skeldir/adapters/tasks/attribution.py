"""Task adapter: recompute a tenant's pending orders (ids in, domain code does the work)."""

from __future__ import annotations

import uuid

import asyncpg
from celery import shared_task

from skeldir.adapters.tasks.maintenance import log_learned
from skeldir.adapters.tasks.runtime import runtime
from skeldir.adapters.tasks.scheduling import (
    RECOMPUTE_TASK,
    claim_and_publish,
    schedule_continuation,
)
from skeldir.base.db import DATABASE_UNAVAILABLE_ERRORS
from skeldir.base.observability import metrics
from skeldir.domains.attribution.jobs import finish_run, run_recompute_job
from skeldir.operations.model_learning import learn_first_weights

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
        outcome = rt.run(
            run_recompute_job(
                rt.pool,
                tenant,
                job_id,
                batch_size=rt.settings.recompute_batch_size,
                max_batches=rt.settings.recompute_batches_per_task,
                max_seconds=rt.settings.task_slice_seconds,
            )
        )
    except TRANSIENT_DB_ERRORS as exc:
        _record_failure(rt, tenant, job_id, exc)
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 30))
    except Exception as exc:
        _record_failure(rt, tenant, job_id, exc)
        raise
    metrics.ORDERS_ATTRIBUTED.inc(outcome.orders)
    if outcome.more_pending:
        schedule_continuation(rt, self.app, tenant)
    elif rt.settings.learn_min_conversions:
        try:
            first = rt.run(
                learn_first_weights(
                    rt.pool, tenant, min_conversions=rt.settings.learn_min_conversions
                )
            )
        except TRANSIENT_DB_ERRORS:
            first = None  # the tenant's next recompute tries again
        if first is not None:
            log_learned(tenant, first.learned)
            if first.orders_marked:
                claim_and_publish(rt, self.app, tenant, trigger="learned")
    return {"batches": outcome.batches, "orders": outcome.orders}


def _record_failure(rt, tenant: uuid.UUID, job_id: uuid.UUID, exc: BaseException) -> None:
    try:
        rt.run(finish_run(rt.pool, tenant, job_id, None, error=type(exc).__name__))
    except Exception:  # the database may be what failed: a later run marks the row abandoned
        pass
