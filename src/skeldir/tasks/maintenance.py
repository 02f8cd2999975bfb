"""Task adapter: the sweeper that heals chains lost to a down broker or a killed worker."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from skeldir.tasks.runtime import runtime
from skeldir.tasks.scheduling import claim_and_publish

log = logging.getLogger(__name__)


@shared_task(name="maintenance.sweep_pending", bind=True, acks_late=True)
def sweep_pending(self) -> int:
    rt = runtime()
    settings = rt.settings
    tenants = rt.run(rt.pool.fetch(
        "SELECT tenant_id FROM tenants_needing_recompute($1, $2) AS tenant_id",
        timedelta(seconds=settings.sweep_grace_seconds),
        timedelta(seconds=settings.chain_stale_seconds),
    ))
    scheduled = 0
    for row in tenants:
        if claim_and_publish(rt, self.app, row["tenant_id"], trigger="sweeper"):
            scheduled += 1
            log.info("sweeper_scheduled_chain", extra={"tenant_id": str(row["tenant_id"])})
    return scheduled
