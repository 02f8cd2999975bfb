"""Read endpoints for attribution results."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from skeldir.api.auth import Principal, require_reader
from skeldir.attribution.explain import explained_path
from skeldir.attribution.models import RULE_BASED_MODELS
from skeldir.attribution.recompute import DATA_DRIVEN_MODELS
from skeldir.db import tenant_transaction
from skeldir.reporting.queries import channel_performance, order_attribution

MODELS = RULE_BASED_MODELS + DATA_DRIVEN_MODELS


def utc_midnight(day: date) -> datetime:
    """Days are UTC days everywhere (reports group by the UTC day), whatever the host's zone."""
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


router = APIRouter(prefix="/api/attribution", tags=["attribution"])


@router.get(
    "/orders/{provider}/{external_order_id}", summary="One order's revenue and credits by model"
)
async def get_order_attribution(
    provider: str,
    external_order_id: str,
    request: Request,
    principal: Principal = Depends(require_reader),
) -> dict:
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        result = await order_attribution(conn, provider, external_order_id)
        if result is None:
            raise HTTPException(404, "no such order for this tenant")
        result["path"] = await explained_path(conn, principal.tenant_id, result.pop("order_id"))
    return result


@router.get(
    "/channels", summary="Revenue, refunds, net and orders per channel and day under one model"
)
async def get_channel_performance(
    request: Request,
    model: str = Query(
        description="first_touch, last_touch, last_non_direct, linear, time_decay, "
        "position_based, markov or shapley"
    ),
    start: date = Query(alias="from"),
    end: date = Query(alias="to"),
    currency: str | None = Query(default=None, pattern="^[A-Z]{3}$"),
    principal: Principal = Depends(require_reader),
) -> dict:
    if model not in MODELS:
        raise HTTPException(400, f"unknown model; known: {', '.join(MODELS)}")
    if end < start or (end - start).days >= 366:
        raise HTTPException(400, "'to' must be on or after 'from', at most 366 days")
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        rows = await channel_performance(
            conn, model, utc_midnight(start), utc_midnight(end + timedelta(days=1)), currency
        )
    return {"model": model, "from": start.isoformat(), "to": end.isoformat(), "rows": rows}
