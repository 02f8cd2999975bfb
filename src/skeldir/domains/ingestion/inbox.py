"""Store verified deliveries exactly once and apply them to the order ledger: one delivery, or
many of any tenants, in one round trip and one transaction (`ingest_events`)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import orjson

from skeldir.base.crypto import SecretBox
from skeldir.base.db import tenant_transaction
from skeldir.domains.ingestion.event import CommerceEvent
from skeldir.domains.ingestion.hints import hints_document
from skeldir.domains.ingestion.provider import Delivery, UnprocessableEvent
from skeldir.domains.ingestion.stitching import order_stitch

# Results carry the ordinal of their event (1-based), so each caller gets its own.
_INGEST_MANY_SQL = (
    "SELECT ordinal, status, event_id, order_id, needs_chain"
    " FROM ingest_events($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
# What the ledger functions raise for an event they refuse whole (an amount that nothing
# converts into its order's currency); the message names currencies, never values.
LEDGER_REFUSED_SQLSTATE = "SKC01"


def ledger_refusal(exc: asyncpg.PostgresError) -> UnprocessableEvent | None:
    """The ledger's refusal as the unprocessable event it is (to dead-letter), else None."""
    if getattr(exc, "sqlstate", None) != LEDGER_REFUSED_SQLSTATE:
        return None
    return UnprocessableEvent(getattr(exc, "message", None) or str(exc))


@contextmanager
def _refusals_unprocessable() -> Iterator[None]:
    """Raises the ledger's refusal of an event as UnprocessableEvent; other errors as they are."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        refusal = ledger_refusal(exc)
        if refusal is None:
            raise
        raise refusal from None


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: str  # "accepted" | "duplicate"
    event_id: uuid.UUID
    order_id: uuid.UUID | None
    # True when this event changed an order and no fresh chain is queued for the tenant.
    needs_chain: bool


@dataclass(frozen=True, slots=True)
class IngestArguments:
    """One event as `ingest_events` takes it (its documents are encoded to JSON text there)."""

    tenant_id: uuid.UUID
    source_id: uuid.UUID
    provider: str
    topic: str
    dedupe_key: str
    payload: dict
    order: dict
    entries: list[dict]


def ingest_arguments(
    *,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    provider: str,
    delivery: Delivery,
    stitch_key: bytes | None = None,
) -> IngestArguments:
    store = order_store(delivery.event, source_id)
    return IngestArguments(
        tenant_id,
        source_id,
        provider,
        delivery.topic,
        # Two stores may send the same delivery: their events are not duplicates of each other.
        f"store:{store}:{delivery.dedupe_key}" if store else delivery.dedupe_key,
        delivery.redacted_payload,
        order_document(delivery.event, order_stitch(delivery.stitch, stitch_key), store),
        entry_documents(delivery.event),
    )


def order_store(event: CommerceEvent, source_id: uuid.UUID) -> str:
    """The store an event's order ids belong to: its source where the platform numbers orders
    per store, else '' (the ids are unique across the platform's stores)."""
    return str(source_id) if event.order_ids_per_store else ""


def order_document(
    event: CommerceEvent, stitch: dict[str, str | None] | None = None, store: str = ""
) -> dict:
    """The ledger's view of an event, as the ingest function reads it."""
    return {
        **(stitch or {}),
        "external_order_id": event.external_order_id,
        "store": store,
        "has_snapshot": event.has_order_snapshot,
        "currency": event.currency,
        "total_minor": event.total_minor,
        "presentment_currency": event.presentment_currency,
        "presentment_total_minor": event.presentment_total_minor,
        "ordered_at": event.ordered_at.isoformat(),
        "updated_at": event.updated_at.isoformat() if event.updated_at else None,
        "cancelled_at": event.cancelled_at.isoformat() if event.cancelled_at else None,
        "hints": hints_document(event.hints),
    }


def entry_documents(event: CommerceEvent) -> list[dict]:
    return [
        {
            "external_id": entry.external_id,
            "kind": entry.kind.value,
            "amount_minor": entry.amount_minor,
            "currency": entry.currency,
            "occurred_at": entry.occurred_at.isoformat(),
        }
        for entry in event.entries
    ]


async def ingest(
    executor: asyncpg.Pool | asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    provider: str,
    delivery: Delivery,
    chain_stale: timedelta,
    stitch_key: bytes | None = None,
) -> IngestResult:
    arguments = ingest_arguments(
        tenant_id=tenant_id,
        source_id=source_id,
        provider=provider,
        delivery=delivery,
        stitch_key=stitch_key,
    )
    return await ingest_one(executor, arguments, chain_stale)


async def ingest_one(
    executor: asyncpg.Pool | asyncpg.Connection, event: IngestArguments, chain_stale: timedelta
) -> IngestResult:
    (result,) = await ingest_many(executor, [event], chain_stale)
    return result


async def ingest_many(
    executor: asyncpg.Pool | asyncpg.Connection,
    events: list[IngestArguments],
    chain_stale: timedelta,
) -> list[IngestResult]:
    """Every event in one round trip and one transaction: all are stored or none is. Each event
    sets its own tenant context inside, so events of different tenants may share a call. One
    event the ledger refuses fails the call (the batcher then stores each event alone)."""
    with _refusals_unprocessable():
        rows = await executor.fetch(
            _INGEST_MANY_SQL,
            [e.tenant_id for e in events],
            [e.source_id for e in events],
            [e.provider for e in events],
            [e.topic for e in events],
            [e.dedupe_key for e in events],
            [_json(e.payload) for e in events],
            [_json(e.order) for e in events],
            [_json(e.entries) for e in events],
            chain_stale,
        )
    results: list[IngestResult | None] = [None] * len(events)
    for row in rows:
        results[row["ordinal"] - 1] = IngestResult(
            row["status"], row["event_id"], row["order_id"], row["needs_chain"]
        )
    if any(result is None for result in results):
        raise RuntimeError(f"ingest_events answered {len(rows)} rows for {len(events)} events")
    return results


def _json(document: dict | list) -> str:
    # As text: a jsonb[] whose elements are lists (the entries) would be read as 2-dimensional.
    return orjson.dumps(document).decode()


async def record_dead_event(
    pool: asyncpg.Pool,
    box: SecretBox,
    *,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    provider: str,
    topic: str | None,
    reason: str,
    body: bytes,
    headers: dict[str, str],
) -> uuid.UUID:
    """Keep a verified but unusable delivery; its body only encrypted (it may hold PII)."""
    body_sha256 = hashlib.sha256(body).digest()
    async with tenant_transaction(pool, tenant_id) as conn:
        dead_event_id = await conn.fetchval(
            "INSERT INTO dead_events (tenant_id, source_id, provider, topic, reason, body_sha256,"
            " body_ciphertext, headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (tenant_id, source_id, body_sha256) DO NOTHING RETURNING dead_event_id",
            tenant_id,
            source_id,
            provider,
            topic,
            reason[:500],
            body_sha256,
            box.encrypt(body, context=tenant_id.bytes),
            headers,
        )
        if dead_event_id is None:
            dead_event_id = await conn.fetchval(
                "SELECT dead_event_id FROM dead_events WHERE tenant_id = $1 AND source_id = $2"
                " AND body_sha256 = $3",
                tenant_id,
                source_id,
                body_sha256,
            )
    return dead_event_id
