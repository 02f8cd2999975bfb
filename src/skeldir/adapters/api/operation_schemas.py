"""Request and response shapes of the operations endpoints, as /openapi.json documents them.

No shape has a field for a payload, a dead body or its headers: they may hold personal data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from skeldir.adapters.api.report_params import IsoDay
from skeldir.operations.dead_letters import MAX_BULK_REPLAY
from skeldir.operations.event_log import MAX_TOPIC_LENGTH
from skeldir.operations.reparse import MAX_FAILURES_LISTED

FROM_HELP = "Received at or after: an ISO date (its UTC day) or date-time (UTC if no offset)"
TO_HELP = "Received before: an ISO date (up to the end of that UTC day) or date-time"


class EventSelection(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    provider: str | None = Field(default=None, examples=["shopify"])
    topic: str | None = Field(default=None, max_length=MAX_TOPIC_LENGTH, examples=["orders/paid"])
    start: str | None = Field(default=None, alias="from", description=FROM_HELP)
    end: str | None = Field(default=None, alias="to", description=TO_HELP)


class ReplaySelection(EventSelection):
    limit: int = Field(
        default=100,
        ge=1,
        le=MAX_BULK_REPLAY,
        description="Most dead events replayed: never replayed ones first, oldest first",
    )


class RecomputeRange(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    start: IsoDay = Field(alias="from", description="First UTC day of orders, included")
    end: IsoDay = Field(alias="to", description="Last UTC day of orders, included")


class EventItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: uuid.UUID
    provider: str
    topic: str
    external_order_id: str | None
    received_at: datetime
    signature_verified: bool
    reparsed_at: datetime | None


class EventPage(BaseModel):
    items: list[EventItem]
    next_cursor: str | None


class DeadEventItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    dead_event_id: uuid.UUID
    provider: str
    topic: str | None
    reason: str
    received_at: datetime
    replayed_at: datetime | None
    replayed_event_id: uuid.UUID | None
    replay_attempts: int
    last_replay_error: str | None


class DeadEventPage(BaseModel):
    items: list[DeadEventItem]
    next_cursor: str | None


class ReplayOutcome(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    dead_event_id: uuid.UUID
    outcome: Literal["replayed", "duplicate", "still_dead"] = Field(
        description="replayed: stored now; duplicate: the event was stored already; "
        "still_dead: the current parser refuses it too"
    )
    event_id: uuid.UUID | None = Field(default=None, description="The stored webhook event")
    reason: str | None = Field(default=None, description="Why it is still dead")


class BulkReplay(BaseModel):
    items: list[ReplayOutcome]
    replayed: int
    duplicate: int
    still_dead: int


class ReparseFailureItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: uuid.UUID
    reason: str


class ReparseResult(BaseModel):
    reparsed: int = Field(description="Events the current parser read and applied again")
    changed_orders: int = Field(description="Orders that changed and are re-attributed")
    failed: list[ReparseFailureItem] = Field(
        description=f"Events the current parser refuses (the first {MAX_FAILURES_LISTED})"
    )
    failed_count: int


class Marked(BaseModel):
    marked: int = Field(description="Orders marked for re-attribution")
