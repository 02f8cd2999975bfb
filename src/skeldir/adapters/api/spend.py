"""The spend ledger over HTTP: `POST /api/spend` loads rows (admin key), `GET
/api/reports/spend` reads them in the reporting currency (read key)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.responses import JSONResponse

from skeldir.adapters.api.auth import Principal, require_admin, require_reader
from skeldir.adapters.api.problem_responses import READER_ERRORS, problem_responses
from skeldir.adapters.api.report_params import (
    REPORT_MAX_DAYS,
    DayRange,
    PageRequest,
    day_range,
    page_request,
    report_page,
)
from skeldir.adapters.api.spend_schemas import (
    MAX_ROWS,
    SpendAccepted,
    SpendPage,
    upload_schema,
)
from skeldir.adapters.api.tenant_connection import TenantConnection
from skeldir.base.http.problems import problem
from skeldir.domains.spend import ledger
from skeldir.domains.spend.reads import spend_rows
from skeldir.domains.spend.rows import validate_all

router = APIRouter(tags=["spend"])

# 10,000 rows of long names stay well under this; a larger body is refused while it is read.
MAX_BODY = 16 * 1024 * 1024

report_days = day_range(REPORT_MAX_DAYS)


async def _capped_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, f"the body limit is {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/api/spend",
    summary=f"Load up to {MAX_ROWS:,} rows of ad spend; a key loaded again replaces its figures",
    response_model=SpendAccepted,
    responses=problem_responses(400, 401, 403, 413, 422),
    openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": upload_schema()}},
    }},
)
async def load_spend(
    request: Request, principal: Principal = Depends(require_admin)
) -> JSONResponse:
    try:
        document = orjson.loads(await _capped_body(request))
    except orjson.JSONDecodeError:
        raise HTTPException(400, "the body is not valid JSON") from None
    rows = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_ROWS:
        raise HTTPException(400, f'the body must be {{"rows": [...]}} with 1 to {MAX_ROWS} rows')
    valid, invalid = validate_all(rows)
    if invalid:
        # All or nothing: a file half loaded is worse than one refused with its reasons.
        return problem(
            422, "Invalid request", f"{len(invalid)} of {len(rows)} rows are invalid;"
            " nothing was stored",
            errors=[{"index": e.index, "errors": list(e.errors)} for e in invalid],
        )
    await ledger.store(request.app.state.pool, principal.tenant_id, valid)
    return JSONResponse({"accepted": len(valid), "errors": []})


@router.get(
    "/api/reports/spend",
    summary="Spend per day and ad, converted into the reporting currency at the day's rate",
    response_model=SpendPage,
    responses=READER_ERRORS,
)
async def spend_report(
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(report_days),
    paging: PageRequest = Depends(page_request),
    *,
    conn: TenantConnection,
) -> dict:
    return await report_page(
        days,
        paging,
        ("platform", "account_id", "campaign_id", "adset_id", "ad_id"),
        lambda after, n: spend_rows(conn, days.start, days.end, after, n),
    )
