"""Task adapters for scheduled upkeep: the sweeper that heals chains lost to a down broker or
a killed worker, and the learner of the data-driven models' weights."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

from celery import shared_task

from skeldir.adapters.tasks.runtime import runtime
from skeldir.adapters.tasks.scheduling import claim_and_publish
from skeldir.domains.attribution.jobs import abandon_dead_jobs
from skeldir.domains.attribution.learning import Learned, learn_weights

log = logging.getLogger(__name__)

# Tenants with a visit this recent have their weights learned; others keep their last ones.
LEARN_ACTIVE_DAYS = 30


@shared_task(name="maintenance.sweep_pending", bind=True, acks_late=True)
def sweep_pending(self) -> int:
    rt = runtime()
    settings = rt.settings
    abandoned = rt.run(abandon_dead_jobs(rt.pool))
    if abandoned:
        log.info("sweeper_abandoned_jobs", extra={"jobs": abandoned})
    tenants = rt.run(
        rt.pool.fetch(
            "SELECT tenant_id FROM tenants_needing_recompute($1, $2) AS tenant_id",
            timedelta(seconds=settings.sweep_grace_seconds),
            timedelta(seconds=settings.chain_stale_seconds),
        )
    )
    scheduled = 0
    for row in tenants:
        if claim_and_publish(rt, self.app, row["tenant_id"], trigger="sweeper"):
            scheduled += 1
            log.info("sweeper_scheduled_chain", extra={"tenant_id": str(row["tenant_id"])})
    return scheduled


@shared_task(name="maintenance.learn_weights", bind=True, acks_late=True)
def learn_weights_for_all(self) -> int:
    """Learn every active tenant's Markov and Shapley weights (tenants with recent visits)."""
    rt = runtime()
    since = datetime.now(timezone.utc) - timedelta(days=LEARN_ACTIVE_DAYS)
    tenants = rt.run(
        rt.pool.fetch("SELECT * FROM tenants_with_touchpoints($1) AS tenant_id", since)
    )
    for row in tenants:
        log_learned(row["tenant_id"], rt.run(learn_weights(rt.pool, row["tenant_id"])))
    return len(tenants)


def log_learned(tenant_id: uuid.UUID, learned: list[Learned]) -> None:
    for weights in learned:
        log.info(
            "model_weights_learned",
            extra={
                "tenant_id": str(tenant_id),
                "model": weights.model,
                "version": weights.version,
                "paths": weights.paths,
                "conversions": weights.conversions,
            },
        )
