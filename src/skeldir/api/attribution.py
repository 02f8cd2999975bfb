"""Read endpoints for attribution results."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from skeldir.api.auth import Principal, require_reader
from skeldir.db import tenant_transaction
from skeldir.reporting.queries import order_attribution

router = APIRouter(prefix="/api/attribution", tags=["attribution"])


@router.get("/orders/{provider}/{external_order_id}", summary="One order's revenue and credits by model")
async def get_order_attribution(
    provider: str, external_order_id: str, request: Request, principal: Principal = Depends(require_reader)
) -> dict:
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        result = await order_attribution(conn, provider, external_order_id)
    if result is None:
        raise HTTPException(404, "no such order for this tenant")
    return result
