"""Schedule a tenant's recompute -> refresh chain, at most once while one is queued."""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import asyncpg
from celery import Celery, chain

from skeldir.base.db import tenant_transaction
from skeldir.base.observability import metrics

log = logging.getLogger(__name__)

RECOMPUTE_TASK = "attribution.recompute_window"
REFRESH_TASK = "reporting.refresh_for_tenant"


def chain_for(app: Celery, tenant_id: uuid.UUID) -> chain:
    return chain(
        app.signature(RECOMPUTE_TASK, args=(str(tenant_id),), immutable=True),
        app.signature(REFRESH_TASK, args=(str(tenant_id),), immutable=True),
    )


def publish_chain(app: Celery, tenant_id: uuid.UUID, trigger: str) -> None:
    """Publish synchronously (Celery's publish blocks): call from a thread or a worker."""
    chain_for(app, tenant_id).apply_async(retry=False)
    metrics.CHAINS_SCHEDULED.labels(trigger=trigger).inc()


_CLAIM_SQL = "SELECT claim_chain($1, $2)"


def claim_and_publish(rt, app: Celery, tenant_id: uuid.UUID, trigger: str) -> bool:
    """From a worker: publish the tenant's chain unless a fresh one is already queued."""
    stale = timedelta(seconds=rt.settings.chain_stale_seconds)
    if not rt.run(rt.pool.fetchval(_CLAIM_SQL, tenant_id, stale)):
        return False
    try:
        publish_chain(app, tenant_id, trigger)
    except Exception:
        rt.run(release_claim(rt.pool, tenant_id))
        raise
    return True


def schedule_continuation(rt, app: Celery, tenant_id: uuid.UUID) -> None:
    """Queue the tenant's next chain for the work a task left; if the broker or the database
    fails here, the work stays marked and the sweeper schedules it."""
    try:
        claim_and_publish(rt, app, tenant_id, trigger="continuation")
    except Exception as exc:
        log.warning(
            "continuation_schedule_failed",
            extra={"tenant_id": str(tenant_id), "error": repr(exc)[:300]},
        )


async def release_claim(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> None:
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(
            "UPDATE chain_state SET queued_at = NULL WHERE tenant_id = $1", tenant_id
        )


class ChainScheduler:
    """Used by the API after an ingest commits; never blocks the event loop on the broker."""

    def __init__(self, pool: asyncpg.Pool, app: Celery, chain_stale: timedelta) -> None:
        self._pool = pool
        self._app = app
        self._stale = chain_stale
        # One thread: publishes are rare (debounced) and kombu producers are not shared safely.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="celery-publish")
        # One claim per tenant in flight: webhooks arriving meanwhile would only queue up on
        # the same chain_state row to learn that the first one claimed it.
        self._claiming: dict[uuid.UUID, asyncio.Task] = {}

    async def request(self, tenant_id: uuid.UUID, context: dict[str, str]) -> None:
        if tenant_id in self._claiming:
            return
        task = asyncio.create_task(self._schedule(tenant_id, context))
        self._claiming[tenant_id] = task
        task.add_done_callback(lambda _task: self._claiming.pop(tenant_id, None))

    async def _schedule(self, tenant_id: uuid.UUID, context: dict[str, str]) -> None:
        try:
            if not await self._pool.fetchval(_CLAIM_SQL, tenant_id, self._stale):
                return
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                self._executor, publish_chain, self._app, tenant_id, "ingest"
            )
            log.info(
                "ingestion_followup_tasks_enqueued",
                extra={**context, "tasks": [RECOMPUTE_TASK, REFRESH_TASK]},
            )
        except Exception as exc:  # the sweeper reschedules; the event itself is committed
            log.warning(
                "chain_schedule_failed",
                extra={"tenant_id": str(tenant_id), "error": repr(exc)[:300]},
            )
            try:
                await release_claim(self._pool, tenant_id)
            except Exception:
                log.warning("chain_claim_release_failed", extra={"tenant_id": str(tenant_id)})

    async def drain(self) -> None:
        if self._claiming:
            await asyncio.gather(*self._claiming.values(), return_exceptions=True)
        self._executor.shutdown(wait=True)
