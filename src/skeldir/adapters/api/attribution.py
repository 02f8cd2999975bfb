"""Read endpoints for attribution results: one order explained, channel performance."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.responses import Response

from skeldir.adapters.api.auth import Principal, require_reader
from skeldir.adapters.api.order_schemas import OrderExplanation
from skeldir.adapters.api.problem_responses import READER_ERRORS, problem_responses
from skeldir.adapters.api.report_params import (
    REPORT_MAX_DAYS,
    DayRange,
    currency_filter,
    day_range,
    required_model,
)
from skeldir.adapters.api.report_schemas import ChannelTable
from skeldir.adapters.api.tenant_connection import TenantConnection
from skeldir.base.http.problems import problem
from skeldir.domains.attribution.explain import explained_path
from skeldir.domains.reporting.channel_reads import channel_rows
from skeldir.domains.reporting.queries import AmbiguousOrder, order_attribution

router = APIRouter(prefix="/api/attribution", tags=["attribution"])


@router.get(
    "/orders/{provider}/{external_order_id}",
    summary="One order's revenue, path and credits by model",
    response_model=OrderExplanation,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def get_order_attribution(
    provider: str,
    external_order_id: str,
    request: Request,
    principal: Principal = Depends(require_reader),
    store: str | None = Query(
        default=None,
        max_length=100,
        description="The store (source id) of the order, where the platform numbers orders per"
        " store (WooCommerce); needed only when several stores have an order with this id",
    ),
) -> dict | Response:
    if "\x00" in provider + external_order_id + (store or ""):
        # No stored id holds a NUL, and PostgreSQL refuses one even as a query parameter.
        raise HTTPException(404, "no such order for this tenant")
    async with request.app.state.reads.tenant_transaction(principal.tenant_id) as conn:
        try:
            result = await order_attribution(conn, provider, external_order_id, store)
        except AmbiguousOrder as exc:
            return problem(
                409,
                "Conflict",
                f"{len(exc.stores)} stores have a {provider} order {external_order_id}:"
                " name one with ?store=<source id>",
                stores=exc.stores,
            )
        if result is None:
            raise HTTPException(404, "no such order for this tenant")
        result["path"] = await explained_path(conn, principal.tenant_id, result.pop("order_id"))
    return result


@router.get(
    "/channels",
    summary="Revenue, refunds, net and orders per channel and day under one model (unpaged)",
    description="Superseded by the paged `/api/reports/channels`.",
    response_model=ChannelTable,
    responses=READER_ERRORS,
)
async def get_channel_performance(
    # First: a request without a valid key learns nothing, not even that a parameter is wrong.
    principal: Principal = Depends(require_reader),
    model: str = Depends(required_model),
    days: DayRange = Depends(day_range(REPORT_MAX_DAYS)),
    currency: str | None = Depends(currency_filter),
    *,
    conn: TenantConnection,
) -> dict:
    rows = await channel_rows(conn, model, days.start, days.end, currency)
    return {"model": model, "from": days.start, "to": days.end, "rows": rows}
