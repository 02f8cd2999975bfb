"""Operations over the API: list stored and dead events (read scope); replay dead events,
re-parse stored events and re-attribute a date range (admin scope). Never a payload or a body:
they may hold personal data.

Work that changed orders schedules the tenant's chain after it commits, as a webhook does.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from skeldir.adapters.api.auth import Principal, require_admin, require_reader
from skeldir.adapters.api.operation_schemas import (
    FROM_HELP,
    TO_HELP,
    BulkReplay,
    DeadEventItem,
    DeadEventPage,
    EventItem,
    EventPage,
    EventSelection,
    Marked,
    RecomputeRange,
    ReparseFailureItem,
    ReparseResult,
    ReplayOutcome,
    ReplaySelection,
)
from skeldir.adapters.api.pagination import decode_cursor, page
from skeldir.adapters.api.problem_responses import ADMIN_ERRORS
from skeldir.adapters.api.report_params import PageRequest, page_request
from skeldir.operations import dead_letters, event_log, reattribution, reparse
from skeldir.operations.event_log import MAX_TOPIC_LENGTH, EventFilter, Keyset

router = APIRouter(tags=["operations"], responses=ADMIN_ERRORS)


def _filter(
    provider: str | None, topic: str | None, start: str | None, end: str | None
) -> EventFilter:
    if topic is not None and "\x00" in topic:
        raise HTTPException(400, "a topic has no NUL character")
    try:
        return event_log.event_filter(provider, topic, start, end)
    except (ValueError, OverflowError) as exc:  # OverflowError: the day after 9999-12-31
        raise HTTPException(400, str(exc)) from exc


def listing_filter(
    provider: str | None = Query(default=None, examples=["shopify"]),
    topic: str | None = Query(default=None, max_length=MAX_TOPIC_LENGTH),
    start: str | None = Query(default=None, alias="from", description=FROM_HELP),
    end: str | None = Query(default=None, alias="to", description=TO_HELP),
) -> EventFilter:
    return _filter(provider, topic, start, end)


def _keyset_after(cursor: str | None) -> Keyset | None:
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    try:
        return datetime.fromisoformat(values[0]), uuid.UUID(values[1])
    except (TypeError, ValueError):
        raise HTTPException(400, "the cursor is not one this API returned") from None


async def _schedule(request: Request, tenant_id: uuid.UUID, trigger: str) -> None:
    await request.app.state.schedule_chain(
        tenant_id, {"tenant_id": str(tenant_id), "trigger": trigger}
    )


@router.get("/api/events", summary="Stored webhook events, newest first (never a payload)")
async def list_events(
    request: Request,
    principal: Principal = Depends(require_reader),
    filters: EventFilter = Depends(listing_filter),
    paging: PageRequest = Depends(page_request),
) -> EventPage:
    rows = await event_log.list_events(
        request.app.state.reads.pool,
        principal.tenant_id,
        filters,
        limit=paging.limit + 1,
        after=_keyset_after(paging.cursor),
    )
    kept, next_cursor = page(
        rows, paging.limit, lambda e: (e.received_at.isoformat(), str(e.event_id))
    )
    return EventPage(items=[EventItem.model_validate(e) for e in kept], next_cursor=next_cursor)


@router.get(
    "/api/dead-events",
    summary="Dead events (verified deliveries the parser refused), newest first (never a body)",
)
async def list_dead_events(
    request: Request,
    principal: Principal = Depends(require_reader),
    filters: EventFilter = Depends(listing_filter),
    status: Literal["dead", "replayed"] | None = Query(
        default=None, description="dead: not replayed yet; replayed: stored by a replay"
    ),
    paging: PageRequest = Depends(page_request),
) -> DeadEventPage:
    rows = await dead_letters.list_dead_events(
        request.app.state.reads.pool,
        principal.tenant_id,
        filters,
        status=status,
        limit=paging.limit + 1,
        after=_keyset_after(paging.cursor),
    )
    kept, next_cursor = page(
        rows, paging.limit, lambda e: (e.received_at.isoformat(), str(e.dead_event_id))
    )
    return DeadEventPage(
        items=[DeadEventItem.model_validate(e) for e in kept], next_cursor=next_cursor
    )


@router.post(
    "/api/dead-events/replay",
    summary="Replay the dead events that match, with the current parser",
    response_model_exclude_none=True,
)
async def replay_matching(
    selection: ReplaySelection,
    request: Request,
    principal: Principal = Depends(require_admin),
) -> BulkReplay:
    filters = _filter(selection.provider, selection.topic, selection.start, selection.end)
    pool = request.app.state.pool
    ids = await dead_letters.dead_event_ids(
        pool, principal.tenant_id, filters, limit=selection.limit
    )
    results = await _replay(request, principal.tenant_id, ids)
    outcomes = [r.outcome for r in results]
    return BulkReplay(
        items=[ReplayOutcome.model_validate(r) for r in results],
        replayed=outcomes.count(dead_letters.REPLAYED),
        duplicate=outcomes.count(dead_letters.DUPLICATE),
        still_dead=outcomes.count(dead_letters.STILL_DEAD),
    )


@router.post(
    "/api/dead-events/{dead_event_id}/replay",
    summary="Replay one dead event with the current parser (a replayed one answers as before)",
    response_model_exclude_none=True,
)
async def replay_one(
    dead_event_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require_admin),
) -> ReplayOutcome:
    try:
        (result,) = await _replay(request, principal.tenant_id, [dead_event_id])
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    return ReplayOutcome.model_validate(result)


async def _replay(
    request: Request, tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[dead_letters.ReplayResult]:
    results = await dead_letters.replay_dead_events(
        request.app.state.pool,
        request.app.state.box,
        tenant_id,
        ids,
        chain_stale=request.app.state.webhook_edge.chain_stale,
    )
    if any(r.needs_chain for r in results):
        await _schedule(request, tenant_id, "replay")
    return results


@router.post(
    "/api/events/reparse",
    summary="Parse stored events again with the current parser and correct the order ledger",
    description="Events go oldest first, 500 per transaction; a large range takes a while, "
    "and the CLI (`skeldir events reparse`) shows its progress.",
)
async def reparse_events(
    selection: EventSelection,
    request: Request,
    principal: Principal = Depends(require_admin),
) -> ReparseResult:
    filters = _filter(selection.provider, selection.topic, selection.start, selection.end)
    with request.app.state.long_operations.slot(principal.tenant_id, "reparse"):
        summary = await reparse.reparse_events(
            request.app.state.pool,
            principal.tenant_id,
            filters,
            chain_stale=request.app.state.webhook_edge.chain_stale,
        )
    if summary.needs_chain:
        await _schedule(request, principal.tenant_id, "reparse")
    return ReparseResult(
        reparsed=summary.reparsed,
        changed_orders=len(summary.changed_orders),
        failed=[ReparseFailureItem.model_validate(f) for f in summary.failed],
        failed_count=summary.failed_count,
    )


@router.post(
    "/api/recompute",
    summary="Re-attribute the orders of a range of UTC days (after rules, weights or rates "
    "changed)",
)
async def recompute(
    days: RecomputeRange,
    request: Request,
    principal: Principal = Depends(require_admin),
) -> Marked:
    if days.end < days.start:
        raise HTTPException(400, "'to' must be on or after 'from'")
    if days.end == date.max:
        raise HTTPException(400, "'to' must be before 9999-12-31")
    marked = await reattribution.mark_range_pending(
        request.app.state.pool, principal.tenant_id, days.start, days.end
    )
    if marked:
        await _schedule(request, principal.tenant_id, "recompute")
    return Marked(marked=marked)
