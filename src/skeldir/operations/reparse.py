"""Re-parse stored events after a parser fix, and apply the result to the order ledger again.

A stored event's payload is the redacted payload its parser produced, which holds exactly what
the parser reads, so the current parser can read it again. The event keeps its dedupe key and
its identity; only what it says about the order is applied again (see apply_event_to_ledger),
and orders that change are marked pending for the chain. Events go oldest first, so a full
re-parse replays the order in which the ledger first saw them, a batch per transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import orjson

from skeldir.base.db import tenant_transaction
from skeldir.base.observability import metrics
from skeldir.domains.ingestion.inbox import (
    entry_documents,
    ledger_refusal,
    order_document,
    order_store,
)
from skeldir.domains.ingestion.provider import Delivery, UnprocessableEvent
from skeldir.domains.privacy.erasure import REDACTED_PAYLOAD
from skeldir.domains.providers.registry import PROVIDERS, TOPIC_HEADERS
from skeldir.operations.event_log import EventFilter, Keyset, keyset_condition

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# A response lists this many failures at most; `failed_count` says how many there were.
MAX_FAILURES_LISTED = 1000

_APPLY_SQL = "SELECT * FROM apply_event_to_ledger($1, $2, $3, $4, $5, $6, true)"
_STAMP_SQL = (
    "UPDATE webhook_events SET reparsed_at = now()"
    " WHERE tenant_id = $1 AND event_id = ANY($2::uuid[])"
)


@dataclass(frozen=True, slots=True)
class ReparseFailure:
    event_id: uuid.UUID
    reason: str


@dataclass
class ReparseSummary:
    reparsed: int = 0
    changed_orders: set[uuid.UUID] = field(default_factory=set)
    failed: list[ReparseFailure] = field(default_factory=list)
    failed_count: int = 0
    # True when an order changed and no fresh chain is queued for the tenant.
    needs_chain: bool = False


def stored_event_headers(provider: str, topic: str, dedupe_key: str) -> dict[str, str]:
    """The headers a provider's parser reads, rebuilt from the stored event. Shopify and
    WooCommerce name the topic in a header; Standard Webhooks' parser requires the message id.
    The dedupe key a parser derives from them is never used: the stored one stays."""
    headers = {}
    if provider in TOPIC_HEADERS:
        headers[TOPIC_HEADERS[provider]] = topic
    if provider == "standard":
        headers["webhook-id"] = dedupe_key.removeprefix("webhook:")
    return headers


def parse_stored(provider: str, topic: str, dedupe_key: str, payload: Mapping) -> Delivery:
    return PROVIDERS[provider].parse(
        orjson.dumps(payload), stored_event_headers(provider, topic, dedupe_key)
    )


async def reparse_events(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: EventFilter,
    *,
    chain_stale: timedelta,
    on_batch: Callable[[int], None] | None = None,
) -> ReparseSummary:
    summary = ReparseSummary()
    after: Keyset | None = None
    while True:
        async with tenant_transaction(pool, tenant_id) as conn:
            rows = await _next_batch(conn, tenant_id, filters, after)
            if not rows:
                break
            reparsed = []
            for row in rows:
                if await _reparse_one(conn, tenant_id, row, chain_stale, summary):
                    reparsed.append(row["event_id"])
            await conn.execute(_STAMP_SQL, tenant_id, reparsed)
        after = (rows[-1]["received_at"], rows[-1]["event_id"])
        if on_batch is not None:
            on_batch(len(rows))
    log.info(
        "events_reparsed",
        extra={
            "tenant_id": str(tenant_id),
            "reparsed": summary.reparsed,
            "changed_orders": len(summary.changed_orders),
            "failed": summary.failed_count,
        },
    )
    return summary


async def _next_batch(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, filters: EventFilter, after: Keyset | None
) -> list[asyncpg.Record]:
    # A payload copy erased on request or aged out holds nothing to parse.
    args: list = [tenant_id, REDACTED_PAYLOAD]
    conditions = [
        "tenant_id = $1",
        "payload <> $2",
        *filters.conditions(args),
        *keyset_condition(args, after, "event_id", ">"),
    ]
    args.append(BATCH_SIZE)
    return await conn.fetch(
        "SELECT event_id, source_id, provider, topic, dedupe_key, received_at, payload"
        " FROM webhook_events"
        f" WHERE {' AND '.join(conditions)}"
        f" ORDER BY received_at, event_id LIMIT ${len(args)}",
        *args,
    )


async def _reparse_one(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    row: asyncpg.Record,
    chain_stale: timedelta,
    summary: ReparseSummary,
) -> bool:
    try:
        delivery = parse_stored(row["provider"], row["topic"], row["dedupe_key"], row["payload"])
    except UnprocessableEvent as exc:
        _count_failure(summary, row["event_id"], str(exc))
        return False
    try:
        # A savepoint: the ledger may refuse this event and the batch goes on without it.
        async with conn.transaction():
            applied = await conn.fetchrow(
                _APPLY_SQL,
                tenant_id,
                row["provider"],
                row["event_id"],
                order_document(
                    delivery.event, store=order_store(delivery.event, row["source_id"])
                ),
                entry_documents(delivery.event),
                chain_stale,
            )
    except asyncpg.PostgresError as exc:
        refusal = ledger_refusal(exc)
        if refusal is None:
            raise
        _count_failure(summary, row["event_id"], str(refusal))
        return False
    summary.reparsed += 1
    if applied["changed"]:
        summary.changed_orders.add(applied["order_id"])
        summary.needs_chain |= applied["needs_chain"]
    metrics.EVENTS_REPARSED.labels(outcome="changed" if applied["changed"] else "unchanged").inc()
    return True


def _count_failure(summary: ReparseSummary, event_id: uuid.UUID, reason: str) -> None:
    summary.failed_count += 1
    if len(summary.failed) < MAX_FAILURES_LISTED:
        summary.failed.append(ReparseFailure(event_id, reason))
    metrics.EVENTS_REPARSED.labels(outcome="failed").inc()
