"""Task adapters for privacy: carry out one recorded request (ids in), sweep requests whose
task was lost (broker down, worker killed), and apply every tenant's retention daily."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta, timezone

from celery import Celery, shared_task

from skeldir.adapters.tasks.runtime import runtime
from skeldir.base.crypto import secret_box
from skeldir.base.db import tenant_transaction
from skeldir.domains.privacy import requests, retention
from skeldir.domains.privacy.processing import process_request

log = logging.getLogger(__name__)

PROCESS_TASK = "maintenance.privacy_request"
SWEEP_TASK = "maintenance.privacy_sweep"
RETENTION_TASK = "maintenance.retention"
# A request still open this long after it arrived has lost its task: the sweep runs it.
SWEEP_AFTER = timedelta(minutes=2)


def publish_request(app: Celery, tenant_id: uuid.UUID, request_id: uuid.UUID) -> None:
    """Publish synchronously (Celery's publish blocks): call from a thread."""
    app.signature(PROCESS_TASK, args=(str(tenant_id), str(request_id))).apply_async(retry=False)


async def schedule_request(app: Celery, tenant_id: uuid.UUID, request_id: uuid.UUID) -> None:
    """Queue the request's task from the event loop; if the broker is away, the sweep runs the
    request later (it is stored already)."""
    try:
        await asyncio.to_thread(publish_request, app, tenant_id, request_id)
    except Exception as exc:
        log.warning("privacy_request_publish_failed", extra={"error": repr(exc)[:300]})


@shared_task(name=PROCESS_TASK, acks_late=True)
def process_privacy_request(tenant_id: str, request_id: str) -> dict | None:
    rt = runtime()
    tenant, request = uuid.UUID(tenant_id), uuid.UUID(request_id)
    counts = rt.run(process_request(rt.pool, secret_box(rt.settings), tenant, request))
    # Counts and ids only: a request's log line names nobody.
    log.info(
        "privacy_request_processed",
        extra={"tenant_id": tenant_id, "request_id": request_id, "counts": counts},
    )
    return counts


@shared_task(name=SWEEP_TASK, acks_late=True)
def sweep_privacy_requests() -> int:
    rt = runtime()
    before = datetime.now(timezone.utc) - SWEEP_AFTER
    done = 0
    for tenant in rt.run(rt.pool.fetch("SELECT tenant_id FROM tenants_for_retention()")):
        tenant_id = tenant["tenant_id"]

        async def open_ids(tenant_id=tenant_id) -> list[uuid.UUID]:
            async with tenant_transaction(rt.pool, tenant_id) as conn:
                return await requests.open_request_ids(conn, tenant_id, before)

        for request_id in rt.run(open_ids()):
            try:
                process_privacy_request(str(tenant_id), str(request_id))
            except Exception as exc:  # one request that fails leaves the others to run
                log.warning(
                    "privacy_request_failed",
                    extra={"tenant_id": str(tenant_id), "request_id": str(request_id),
                           "error": repr(exc)[:300]},
                )
                continue
            done += 1
    return done


@shared_task(name=RETENTION_TASK, acks_late=True)
def apply_retention() -> dict:
    rt = runtime()
    now = datetime.now(timezone.utc)
    totals: dict[str, int] = {}
    for row in rt.run(rt.pool.fetch("SELECT * FROM tenants_for_retention()")):
        removed = rt.run(
            retention.apply(rt.pool, row["tenant_id"], retention.periods_of(row), now=now)
        )
        for name, count in removed.items():
            totals[name] = totals.get(name, 0) + count
    log.info("retention_applied", extra={"removed": totals})
    return totals
