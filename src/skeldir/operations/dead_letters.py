"""Dead events: verified deliveries the parser refused, listed and replayed after a fix.

A replay decrypts the stored body and runs the current parser on it with the stored headers.
It never checks the signature or the timestamp again: the delivery was verified when it
arrived, and that verdict stands (a provider's freshness window is long past by then). A body
that parses is ingested like any delivery, so dedupe applies; one that does not stays dead.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from cryptography.exceptions import InvalidTag

from skeldir.base.crypto import SecretBox
from skeldir.base.db import tenant_transaction
from skeldir.base.observability import metrics
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.ingestion.provider import Delivery, UnprocessableEvent
from skeldir.domains.ingestion.touchpoints import tenant_stitch_key
from skeldir.domains.providers.registry import PROVIDERS
from skeldir.operations.event_log import EventFilter, Keyset, newest_first

log = logging.getLogger(__name__)

# Listing states and replay outcomes.
DEAD, REPLAYED = "dead", "replayed"
DUPLICATE, STILL_DEAD = "duplicate", "still_dead"
MAX_REASON_LENGTH = 500
# Most dead events one bulk replay takes on (each is its own transaction).
MAX_BULK_REPLAY = 1000


@dataclass(frozen=True, slots=True)
class DeadEvent:
    dead_event_id: uuid.UUID
    provider: str
    topic: str | None
    reason: str
    received_at: datetime
    replayed_at: datetime | None
    replayed_event_id: uuid.UUID | None
    replay_attempts: int
    last_replay_error: str | None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    dead_event_id: uuid.UUID
    outcome: str  # REPLAYED | DUPLICATE | STILL_DEAD
    event_id: uuid.UUID | None = None
    reason: str | None = None
    # True when the replay changed an order and no fresh chain is queued for the tenant.
    needs_chain: bool = False


def _status_condition(status: str | None) -> list[str]:
    if status is None:
        return []
    if status not in (DEAD, REPLAYED):
        raise ValueError(f"status must be {DEAD} or {REPLAYED}")
    return ["replayed_at IS NULL" if status == DEAD else "replayed_at IS NOT NULL"]


async def list_dead_events(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: EventFilter,
    *,
    status: str | None = None,
    limit: int,
    after: Keyset | None = None,
) -> list[DeadEvent]:
    """Up to `limit` dead events, newest first, from the one after `after`. Never a body."""
    return await newest_first(
        pool,
        tenant_id,
        "dead_events",
        DeadEvent,
        filters,
        conditions=_status_condition(status),
        limit=limit,
        after=after,
    )


async def dead_event_ids(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, filters: EventFilter, *, limit: int
) -> list[uuid.UUID]:
    """Up to `limit` events still dead that match: those never replayed first, oldest first,
    then those whose last replay is oldest, so that repeated bulk replays work through every
    one rather than retrying the same refused ones."""
    args: list = [tenant_id]
    conditions = ["tenant_id = $1", "replayed_at IS NULL", *filters.conditions(args)]
    args.append(limit)
    async with tenant_transaction(pool, tenant_id) as conn:
        rows = await conn.fetch(
            f"SELECT dead_event_id FROM dead_events WHERE {' AND '.join(conditions)}"
            " ORDER BY last_replay_at NULLS FIRST, received_at, dead_event_id"
            f" LIMIT ${len(args)}",
            *args,
        )
    return [row["dead_event_id"] for row in rows]


async def replay_dead_events(
    pool: asyncpg.Pool,
    box: SecretBox,
    tenant_id: uuid.UUID,
    dead_event_ids: Sequence[uuid.UUID],
    *,
    chain_stale: timedelta,
    on_replayed: Callable[[ReplayResult], None] | None = None,
) -> list[ReplayResult]:
    """Replay each dead event, one transaction each. LookupError, before any replay, when one
    is not the tenant's. An event replayed before is not replayed again: its result is the
    earlier outcome."""
    async with tenant_transaction(pool, tenant_id) as conn:
        known = {
            row["dead_event_id"]
            for row in await conn.fetch(
                "SELECT dead_event_id FROM dead_events WHERE tenant_id = $1"
                " AND dead_event_id = ANY($2::uuid[])",
                tenant_id,
                list(dead_event_ids),
            )
        }
        unknown = [str(i) for i in dead_event_ids if i not in known]
        if unknown:
            raise LookupError(f"no dead event {', '.join(unknown[:5])} for this tenant")
        try:
            stitch_key = await tenant_stitch_key(conn, box, tenant_id)
        except LookupError:
            stitch_key = None
    results = []
    for dead_event_id in dead_event_ids:
        result = await _replay(pool, box, tenant_id, dead_event_id, stitch_key, chain_stale)
        results.append(result)
        if on_replayed is not None:
            on_replayed(result)
    return results


_LOCK_SQL = """
SELECT source_id, provider, body_ciphertext, headers, replayed_at, replayed_event_id,
       replay_outcome
FROM dead_events WHERE tenant_id = $1 AND dead_event_id = $2 FOR UPDATE
"""
_REPLAYED_SQL = """
UPDATE dead_events SET replayed_at = now(), replayed_event_id = $3, replay_outcome = $4,
    replay_attempts = replay_attempts + 1, last_replay_at = now()
WHERE tenant_id = $1 AND dead_event_id = $2
"""
_STILL_DEAD_SQL = """
UPDATE dead_events SET replay_attempts = replay_attempts + 1, last_replay_error = $3,
    last_replay_at = now()
WHERE tenant_id = $1 AND dead_event_id = $2
"""


async def _replay(
    pool: asyncpg.Pool,
    box: SecretBox,
    tenant_id: uuid.UUID,
    dead_event_id: uuid.UUID,
    stitch_key: bytes | None,
    chain_stale: timedelta,
) -> ReplayResult:
    # The row lock makes concurrent replays of one dead event take turns; the event and the
    # dead event's mark commit together.
    async with tenant_transaction(pool, tenant_id) as conn:
        row = await conn.fetchrow(_LOCK_SQL, tenant_id, dead_event_id)
        if row is None:
            raise LookupError(f"no dead event {dead_event_id} for this tenant")
        if row["replayed_at"] is not None:
            # Marked replayed by other means than a replay: it counts as replayed.
            outcome = row["replay_outcome"] or REPLAYED
            return ReplayResult(dead_event_id, outcome, row["replayed_event_id"])
        try:
            delivery = _parse(box, tenant_id, row)
            # `ingest` only needs `fetchrow`: given this transaction's connection, it stores
            # the event inside the transaction that marks the dead event replayed. The savepoint
            # keeps that transaction usable when the ledger refuses the event.
            async with conn.transaction():
                ingested = await ingest(
                    conn,
                    tenant_id=tenant_id,
                    source_id=row["source_id"],
                    provider=row["provider"],
                    delivery=delivery,
                    chain_stale=chain_stale,
                    stitch_key=stitch_key,
                )
        except UnprocessableEvent as exc:
            reason = str(exc)[:MAX_REASON_LENGTH]
            await conn.execute(_STILL_DEAD_SQL, tenant_id, dead_event_id, reason)
            result = ReplayResult(dead_event_id, STILL_DEAD, reason=reason)
        else:
            outcome = REPLAYED if ingested.status == "accepted" else DUPLICATE
            await conn.execute(_REPLAYED_SQL, tenant_id, dead_event_id, ingested.event_id, outcome)
            result = ReplayResult(
                dead_event_id, outcome, ingested.event_id, needs_chain=ingested.needs_chain
            )
    metrics.DEAD_EVENTS_REPLAYED.labels(outcome=result.outcome).inc()
    log.info(
        "dead_event_replayed",
        extra={
            "tenant_id": str(tenant_id),
            "dead_event_id": str(dead_event_id),
            "outcome": result.outcome,
            "event_id": str(result.event_id) if result.event_id else None,
            "reason": result.reason,
        },
    )
    return result


def _parse(box: SecretBox, tenant_id: uuid.UUID, row: asyncpg.Record) -> Delivery:
    try:
        body = box.decrypt(row["body_ciphertext"], context=tenant_id.bytes)
    except InvalidTag:
        raise UnprocessableEvent("the body does not decrypt with this deployment's key") from None
    return PROVIDERS[row["provider"]].parse(body, row["headers"])
