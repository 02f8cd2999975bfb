"""Retention: what a tenant keeps about people, and for how long.

Defaults (per tenant, `skeldir tenant configure --retention-...`): touchpoints 400 days after
they took place (a year's journeys plus the longest lookback), kept payload copies of webhook
events 90 days after they arrived (the copy is replaced by a marker; the event's ids and dedupe
key stay, so a late redelivery is still a duplicate), dead letters 30 days after their replay
(a dead letter never replayed is a kept payload copy: it goes after the payload period), and
a data request's subject (what its export is read from) after the payload period too.
Aggregates stay: orders, ledger entries, credits and every report. Each step deletes in
batches of `batch_size` rows, one transaction each, so a large backlog never holds long locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.privacy.erasure import REDACTED_PAYLOAD

DEFAULT_TOUCHPOINT_DAYS = 400
DEFAULT_PAYLOAD_DAYS = 90
DEFAULT_DEAD_LETTER_DAYS = 30
BATCH_SIZE = 5000


@dataclass(frozen=True)
class Periods:
    touchpoint_days: int = DEFAULT_TOUCHPOINT_DAYS
    payload_days: int = DEFAULT_PAYLOAD_DAYS
    dead_letter_days: int = DEFAULT_DEAD_LETTER_DAYS


def periods_of(row: Mapping) -> Periods:
    return Periods(row["touchpoint_days"], row["payload_days"], row["dead_letter_days"])


_STEPS = {
    "touchpoints": (
        "DELETE FROM touchpoints WHERE ctid = ANY(ARRAY(SELECT ctid FROM touchpoints"
        " WHERE tenant_id = $1 AND occurred_at < $2 LIMIT $3))"
    ),
    "payload_copies": (
        "UPDATE webhook_events SET payload = $4 WHERE ctid = ANY(ARRAY(SELECT ctid"
        " FROM webhook_events WHERE tenant_id = $1 AND received_at < $2 AND payload <> $4"
        " LIMIT $3))"
    ),
    "dead_letters": (
        "DELETE FROM dead_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM dead_events"
        " WHERE tenant_id = $1 AND (replayed_at < $2"
        " OR (replayed_at IS NULL AND received_at < $4)) LIMIT $3))"
    ),
    # A data request's subject is kept for its export as long as a payload copy.
    "data_request_subjects": (
        "UPDATE privacy_requests SET subject = NULL WHERE ctid = ANY(ARRAY(SELECT ctid"
        " FROM privacy_requests WHERE tenant_id = $1 AND kind = 'data_request'"
        " AND completed_at < $2 AND subject IS NOT NULL LIMIT $3))"
    ),
}


async def apply(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    periods: Periods,
    *,
    now: datetime,
    batch_size: int = BATCH_SIZE,
) -> dict[str, int]:
    """Remove what is older than the tenant's periods at `now`: rows removed per kind."""
    cutoffs = {
        "touchpoints": now - timedelta(days=periods.touchpoint_days),
        "payload_copies": now - timedelta(days=periods.payload_days),
        "dead_letters": now - timedelta(days=periods.dead_letter_days),
        "data_request_subjects": now - timedelta(days=periods.payload_days),
    }
    removed = {}
    for name, statement in _STEPS.items():
        extra = {
            "payload_copies": (REDACTED_PAYLOAD,),
            "dead_letters": (cutoffs["payload_copies"],),
        }.get(name, ())
        total = 0
        while True:
            async with tenant_transaction(pool, tenant_id) as conn:
                status = await conn.execute(
                    statement, tenant_id, cutoffs[name], batch_size, *extra
                )
            rows = int(status.rsplit(" ", 1)[-1])
            total += rows
            if rows < batch_size:
                break
        removed[name] = total
    return removed
