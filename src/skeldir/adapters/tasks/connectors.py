"""Task adapters for the spend connectors: beat fans out one pull task per connector.

Hourly: today and yesterday by the UTC date (platforms report in the account's time zone: an
account east of UTC starts its new day before the UTC date changes, and its first hours wait
for UTC midnight, or the daily pull). Daily: the last `connector_restate_days` days, which platforms
restate. Every few minutes: the next chunk of each unfinished backfill, each chunk a task that
queues the next, so a backfill resumes after a crash or a restart where its table row says.
Connectors that need a new grant are skipped until they get one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timezone

from celery import shared_task

from skeldir.adapters.tasks.runtime import runtime
from skeldir.base.crypto import secret_box
from skeldir.base.observability import metrics
from skeldir.domains.connectors import pulls
from skeldir.domains.connectors.api import platform_api

log = logging.getLogger(__name__)

# A pull may wait on a platform (report jobs, throttling) up to the settings' maximum wait per
# call: more than the default task limits, which would cut it off before it records why.
PULL_LIMITS = {"soft_time_limit": 1800, "time_limit": 1900}


def _fan_out(app, start: date, end: date) -> int:
    rt = runtime()
    connectors = rt.run(pulls.scheduled(rt.pool))
    for platform, seconds in pulls.lag_by_platform(
            connectors, datetime.now(timezone.utc)).items():
        metrics.CONNECTOR_LAG.labels(platform).set(seconds)
    queued = 0
    for c in connectors:
        if c.status == "needs_reauth":
            continue
        app.send_task("connectors.pull", args=[str(c.tenant_id), str(c.connector_id),
                                               start.isoformat(), end.isoformat()])
        queued += 1
    return queued


@shared_task(name="connectors.pull_recent", bind=True, acks_late=True)
def pull_recent(self) -> int:
    return _fan_out(self.app, *pulls.recent_days(datetime.now(timezone.utc).date()))


@shared_task(name="connectors.pull_restated", bind=True, acks_late=True)
def pull_restated(self) -> int:
    days = runtime().settings.connector_restate_days
    return _fan_out(self.app, *pulls.restated_days(datetime.now(timezone.utc).date(), days))


@shared_task(name="connectors.pull", bind=True, acks_late=True, **PULL_LIMITS)
def pull_connector(self, tenant_id: str, connector_id: str, start: str, end: str) -> str:
    rt = runtime()

    async def run() -> str:
        async with platform_api(rt.settings) as api:
            result = await pulls.pull(rt.pool, api, secret_box(rt.settings),
                                      uuid.UUID(tenant_id), uuid.UUID(connector_id),
                                      date.fromisoformat(start), date.fromisoformat(end))
        return result.outcome

    try:
        return rt.run(run())
    except LookupError:
        return "removed"  # removed after the pull was queued


@shared_task(name="connectors.continue_backfills", bind=True, acks_late=True)
def continue_backfills(self) -> int:
    rt = runtime()
    pending = [c for c in rt.run(pulls.scheduled(rt.pool))
               if c.backfill_pending and c.status != "needs_reauth"]
    for c in pending:
        self.app.send_task("connectors.backfill_chunk",
                           args=[str(c.tenant_id), str(c.connector_id)])
    return len(pending)


@shared_task(name="connectors.backfill_chunk", bind=True, acks_late=True, **PULL_LIMITS)
def backfill_chunk(self, tenant_id: str, connector_id: str) -> str:
    """One chunk of a backfill; a good one queues the next (a failed one waits for the next
    `continue_backfills`, which retries from the same day)."""
    rt = runtime()

    async def run():
        async with platform_api(rt.settings) as api:
            return await pulls.backfill_step(rt.pool, api, secret_box(rt.settings),
                                             uuid.UUID(tenant_id), uuid.UUID(connector_id))

    try:
        result = rt.run(run())
    except LookupError:
        return "removed"
    if result is None:
        return "done"
    if result.outcome == "ok":
        self.app.send_task("connectors.backfill_chunk", args=[tenant_id, connector_id])
    return result.outcome
