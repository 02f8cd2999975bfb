"""Report endpoints: daily revenue per currency and in the reporting currency."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from skeldir.api.auth import Principal, require_reader
from skeldir.db import tenant_transaction

router = APIRouter(prefix="/api/reports", tags=["reports"])

_MAX_DAYS = 366


@router.get("/daily-revenue", summary="Gross, refunds, cancellations and net per day and currency")
async def daily_revenue(
    request: Request,
    start: date = Query(alias="from"),
    end: date = Query(alias="to"),
    principal: Principal = Depends(require_reader),
) -> dict:
    if end < start or (end - start).days >= _MAX_DAYS:
        raise HTTPException(400, f"'to' must be on or after 'from', at most {_MAX_DAYS} days")
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT day, currency, gross_minor, refunds_minor, cancellations_minor, net_minor, orders,"
            " reporting_currency, gross_reporting_minor, refunds_reporting_minor,"
            " cancellations_reporting_minor, net_reporting_minor, unconverted_entries"
            " FROM daily_revenue WHERE day BETWEEN $1 AND $2 ORDER BY day, currency",
            start,
            end,
        )
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": [
            {
                "day": r["day"].isoformat(),
                "currency": r["currency"],
                "gross_cents": r["gross_minor"],
                "refunds_cents": r["refunds_minor"],
                "cancellations_cents": r["cancellations_minor"],
                "net_cents": r["net_minor"],
                "orders": r["orders"],
                "reporting_currency": r["reporting_currency"],
                "gross_reporting_cents": r["gross_reporting_minor"],
                "refunds_reporting_cents": r["refunds_reporting_minor"],
                "cancellations_reporting_cents": r["cancellations_reporting_minor"],
                "net_reporting_cents": r["net_reporting_minor"],
                "unconverted_entries": r["unconverted_entries"],
            }
            for r in rows
        ],
    }
