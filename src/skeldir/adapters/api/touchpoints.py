"""Touchpoint collection: `POST /api/touchpoints` with a collect key, and the `/collect.js`
snippet that shops without a collector of their own put on their pages."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from importlib.resources import files

import orjson
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import JSONResponse, Response

from skeldir.adapters.api.auth import bearer_principal
from skeldir.adapters.api.problem_responses import problem_responses
from skeldir.base.db import tenant_transaction
from skeldir.base.http import rate_limits
from skeldir.base.http.bodies import read_capped
from skeldir.domains.attribution.tenant_attribution import rules_in_force
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.privacy.consent import ConsentError, read_consent

router = APIRouter(tags=["touchpoints"])

_MAX_BODY = 2 * 1024 * 1024
# Browsers post from the shop's own origin; the collect key is the credential, never a cookie.
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}
_SNIPPET = files("skeldir.adapters.api.static").joinpath("collect.js").read_bytes()


async def _collector(request: Request) -> uuid.UUID:
    principal = await bearer_principal(request)
    if principal is None:
        raise HTTPException(401, "a valid collect key is required", headers=_CORS)
    request.state.principal = principal
    if principal.scope not in ("collect", "admin"):
        raise HTTPException(403, "this key cannot write touchpoints", headers=_CORS)
    await rate_limits.enforce(request, rate_limits.COLLECT, principal.tenant_id, headers=_CORS)
    return principal.tenant_id


@router.options("/api/touchpoints", include_in_schema=False)
async def touchpoints_preflight() -> Response:
    return Response(status_code=204, headers=_CORS)


@router.post(
    "/api/touchpoints",
    summary="Record up to 1,000 touchpoints; invalid items are reported, valid ones kept",
    responses=problem_responses(400, 401, 403, 413),
)
async def collect_touchpoints(request: Request) -> JSONResponse:
    tenant_id = await _collector(request)
    body = await read_capped(request, _MAX_BODY)
    if body is None:
        raise HTTPException(413, f"the body limit is {_MAX_BODY} bytes", headers=_CORS)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HTTPException(400, "the body is not valid JSON", headers=_CORS) from None
    items = document.get("touchpoints") if isinstance(document, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= touchpoints.MAX_BATCH:
        raise HTTPException(
            400,
            f'the body must be {{"touchpoints": [...]}} with 1 to {touchpoints.MAX_BATCH} items',
            headers=_CORS,
        )
    pool = request.app.state.pool
    async with tenant_transaction(pool, tenant_id) as conn:
        stitch = await touchpoints.tenant_stitch_key(conn, request.app.state.box, tenant_id)
    now = datetime.now(timezone.utc)
    valid, rejected, declined = [], [], 0
    # A batch's consent applies to its items that state none of their own.
    batch_consent = document.get("consent")
    for index, item in enumerate(items):
        stated = item.get("consent", batch_consent) if isinstance(item, dict) else None
        try:
            consent = read_consent(stated)
        except ConsentError as exc:
            rejected.append(touchpoints.Rejected(index, None, (str(exc),)))
            continue
        if not consent.analytics:
            # Nothing of the item is kept, not even its id.
            declined += 1
            continue
        result = touchpoints.validate(item, index, stitch, now, ad_click_ids=consent.ads)
        (valid if isinstance(result, touchpoints.Touchpoint) else rejected).append(result)
    unique = list({t.touchpoint_id: t for t in valid}.values())
    stored = await touchpoints.store(pool, tenant_id, unique, rules_in_force)
    if stored.orders_marked:
        await request.app.state.schedule_chain(tenant_id, {"tenant_id": str(tenant_id)})
    return JSONResponse(
        {
            "accepted": stored.new,
            "duplicates": len(valid) - stored.new,
            "orders_reattributed": stored.orders_marked,
            # Items without analytics consent: nothing of them was kept.
            "declined": declined,
            "rejected": [
                {"index": r.index, "id": r.touchpoint_id, "errors": list(r.errors)}
                for r in rejected
            ],
        },
        headers=_CORS,
    )


@router.get("/collect.js", include_in_schema=False)
async def collect_snippet() -> Response:
    return Response(
        _SNIPPET,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )
