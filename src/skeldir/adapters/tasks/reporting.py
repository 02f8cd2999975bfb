"""Task adapter: refresh a tenant's reports for the orders its recompute touched."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task

from skeldir.adapters.tasks.attribution import TRANSIENT_DB_ERRORS
from skeldir.adapters.tasks.runtime import runtime
from skeldir.adapters.tasks.scheduling import REFRESH_TASK, schedule_continuation
from skeldir.base.observability import metrics
from skeldir.domains.reporting.refresh import refresh_tenant
from skeldir.domains.reporting.registry import REFRESHED

log = logging.getLogger(__name__)


@shared_task(name=REFRESH_TASK, bind=True, acks_late=True, max_retries=8)
def refresh_for_tenant(self, tenant_id: str) -> dict:
    rt = runtime()
    tenant = uuid.UUID(tenant_id)
    try:
        outcome = rt.run(
            refresh_tenant(
                rt.pool,
                tenant,
                batch_size=rt.settings.refresh_batch_size,
                max_batches=rt.settings.refresh_batches_per_task,
                max_seconds=rt.settings.task_slice_seconds,
            )
        )
    except TRANSIENT_DB_ERRORS as exc:
        # Past the last retry the dirty marks stay, and the sweeper schedules a new chain.
        _count("failure")
        raise self.retry(exc=exc, countdown=min(2**self.request.retries, 30))
    except Exception:
        _count("failure")
        raise
    _count("success")
    for report, rows in outcome.rows_by_report.items():
        log.info(
            "report_refreshed",
            extra={
                "tenant_id": tenant_id,
                "report": report,
                "orders": outcome.orders,
                "rows": rows,
            },
        )
    if outcome.more_pending:
        schedule_continuation(rt, self.app, tenant)
    return {"orders": outcome.orders}


def _count(outcome: str) -> None:
    for report in REFRESHED:
        metrics.REPORT_REFRESH.labels(report=report.name, outcome=outcome).inc()
