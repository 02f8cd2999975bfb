"""A tenant's stored webhook events, newest first, and the filter that picks events (and dead
events) by provider, topic and arrival time for listing, replay and re-parse.

Listings carry no payload: stored payloads are redacted, but an operator listing needs none.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone
from typing import TypeVar

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.providers.registry import PROVIDERS

MAX_TOPIC_LENGTH = 100
_MAX_BOUND_LENGTH = 64

# A position in a listing: the (received_at, id) of the last row seen.
Keyset = tuple[datetime, uuid.UUID]
Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class EventFilter:
    provider: str | None = None
    topic: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def conditions(self, args: list) -> list[str]:
        """SQL conditions on provider, topic and received_at; their values go onto `args`."""
        conditions = []
        for column, value, operator in (
            ("provider", self.provider, "="),
            ("topic", self.topic, "="),
            ("received_at", self.since, ">="),
            ("received_at", self.until, "<"),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} {operator} ${len(args)}")
        return conditions


def keyset_condition(args: list, after: Keyset | None, id_column: str, operator: str) -> list[str]:
    """The SQL condition keeping the rows beyond `after` in (received_at, `id_column`) order,
    `operator` "<" in a listing newest first, ">" oldest first; its values go onto `args`."""
    if after is None:
        return []
    args.extend(after)
    return [f"(received_at, {id_column}) {operator} (${len(args) - 1}, ${len(args)})"]


def time_bound(text: str, *, end: bool) -> datetime:
    """An ISO date or date-time as a UTC instant. A date means its whole UTC day: as a start its
    first instant, as an end the next day's first (ends are exclusive). No offset means UTC."""
    try:
        if len(text) > _MAX_BOUND_LENGTH:
            raise ValueError
        try:
            day = date.fromisoformat(text)
        except ValueError:
            moment = datetime.fromisoformat(text)
            return moment.replace(tzinfo=moment.tzinfo or timezone.utc).astimezone(timezone.utc)
    except ValueError:
        raise ValueError(f"{text[:_MAX_BOUND_LENGTH]!r} is not an ISO date or date-time") from None
    return datetime.combine(day + timedelta(days=1 if end else 0), time.min, tzinfo=timezone.utc)


def event_filter(
    provider: str | None = None,
    topic: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> EventFilter:
    """The filter an operator asked for in text; ValueError names what is wrong."""
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"unknown provider; known: {', '.join(PROVIDERS)}")
    if topic is not None and len(topic) > MAX_TOPIC_LENGTH:
        raise ValueError(f"a topic has at most {MAX_TOPIC_LENGTH} characters")
    since = time_bound(start, end=False) if start else None
    until = time_bound(end, end=True) if end else None
    if since is not None and until is not None and until <= since:
        raise ValueError("'to' must be after 'from'")
    return EventFilter(provider, topic, since, until)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: uuid.UUID
    provider: str
    topic: str
    external_order_id: str | None
    received_at: datetime
    signature_verified: bool
    reparsed_at: datetime | None


async def list_events(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: EventFilter,
    *,
    limit: int,
    after: Keyset | None = None,
) -> list[StoredEvent]:
    """Up to `limit` events, newest first, from the one after `after`."""
    return await newest_first(
        pool, tenant_id, "webhook_events", StoredEvent, filters, limit=limit, after=after
    )


async def newest_first(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    table: str,
    row_type: type[Row],
    filters: EventFilter,
    *,
    conditions: Sequence[str] = (),
    limit: int,
    after: Keyset | None,
) -> list[Row]:
    """Up to `limit` rows of an event `table` that match, newest first, from the one after
    `after`, as `row_type`: a dataclass naming the columns read, the table's id first."""
    columns = [field.name for field in fields(row_type)]
    args: list = [tenant_id]
    where = [
        "tenant_id = $1",
        *filters.conditions(args),
        *conditions,
        *keyset_condition(args, after, columns[0], "<"),
    ]
    args.append(limit)
    async with tenant_transaction(pool, tenant_id) as conn:
        rows = await conn.fetch(
            f"SELECT {', '.join(columns)} FROM {table} WHERE {' AND '.join(where)}"
            f" ORDER BY received_at DESC, {columns[0]} DESC LIMIT ${len(args)}",
            *args,
        )
    return [row_type(**row) for row in rows]


async def count_events(pool: asyncpg.Pool, tenant_id: uuid.UUID, filters: EventFilter) -> int:
    args: list = [tenant_id]
    conditions = ["tenant_id = $1", *filters.conditions(args)]
    async with tenant_transaction(pool, tenant_id) as conn:
        return await conn.fetchval(
            f"SELECT count(*) FROM webhook_events WHERE {' AND '.join(conditions)}", *args
        )
