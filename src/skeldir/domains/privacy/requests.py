"""The record of each privacy request: kind, origin, received, completed, counts.

No personal data: the subject holds keyed hashes and Skeldir's own ids, and an erasure's
subject is emptied when it completes (a data request keeps it, so its export can be read).
A platform's delivery id (`dedupe_key`) makes a webhook delivered twice one request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from skeldir.domains.privacy.subjects import Subject

KINDS = ("erasure", "data_request", "shop_redact")
ORIGINS = ("api", "cli", "shopify")
_COLUMNS = "request_id, kind, origin, source_id, received_at, completed_at, counts, subject"


@dataclass(frozen=True)
class PrivacyRequest:
    request_id: uuid.UUID
    kind: str
    origin: str
    source_id: uuid.UUID | None
    received_at: datetime
    completed_at: datetime | None
    counts: dict
    subject: Subject

    def summary(self) -> dict:
        """What a listing shows: never the subject."""
        return {
            "request_id": str(self.request_id),
            "kind": self.kind,
            "origin": self.origin,
            "source_id": str(self.source_id) if self.source_id else None,
            "received_at": self.received_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "counts": self.counts,
        }


def _request(row: asyncpg.Record) -> PrivacyRequest:
    return PrivacyRequest(
        row["request_id"],
        row["kind"],
        row["origin"],
        row["source_id"],
        row["received_at"],
        row["completed_at"],
        dict(row["counts"] or {}),
        Subject.from_document(row["subject"]),
    )


async def record(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    *,
    kind: str,
    origin: str,
    subject: Subject,
    dedupe_key: str | None = None,
    source_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, bool]:
    """Store a request: (its id, True when it is new; False for a delivery seen before)."""
    if kind not in KINDS or origin not in ORIGINS:
        raise ValueError(f"unknown request kind {kind!r} or origin {origin!r}")
    request_id = await conn.fetchval(
        "INSERT INTO privacy_requests (tenant_id, request_id, kind, origin, dedupe_key,"
        " source_id, subject) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (tenant_id, dedupe_key) DO NOTHING RETURNING request_id",
        tenant_id,
        uuid.uuid4(),
        kind,
        origin,
        dedupe_key,
        source_id,
        subject.document(),
    )
    if request_id is not None:
        return request_id, True
    existing = await conn.fetchval(
        "SELECT request_id FROM privacy_requests WHERE tenant_id = $1 AND dedupe_key = $2",
        tenant_id,
        dedupe_key,
    )
    return existing, False


async def get(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, request_id: uuid.UUID, *, lock: bool = False
) -> PrivacyRequest | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM privacy_requests WHERE tenant_id = $1 AND request_id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        request_id,
    )
    return _request(row) if row else None


async def listing(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, *, kind: str | None = None, limit: int = 100
) -> list[PrivacyRequest]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM privacy_requests WHERE tenant_id = $1"
        " AND ($2::text IS NULL OR kind = $2) ORDER BY received_at DESC, request_id LIMIT $3",
        tenant_id,
        kind,
        limit,
    )
    return [_request(row) for row in rows]


async def open_request_ids(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, received_before: datetime
) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT request_id FROM privacy_requests WHERE tenant_id = $1 AND completed_at IS NULL"
        " AND received_at < $2 ORDER BY received_at",
        tenant_id,
        received_before,
    )
    return [row["request_id"] for row in rows]


async def complete(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, request_id: uuid.UUID, counts: dict,
    *, keep_subject: bool,
) -> None:
    await conn.execute(
        "UPDATE privacy_requests SET completed_at = now(), counts = $3,"
        " subject = CASE WHEN $4 THEN subject END"
        " WHERE tenant_id = $1 AND request_id = $2",
        tenant_id,
        request_id,
        counts,
        keep_subject,
    )
