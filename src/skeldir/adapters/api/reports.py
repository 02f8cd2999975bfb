"""Report endpoints: daily revenue, channel performance, model comparison, customer cohorts, an
order explained.

Lists are keyset-paged (see api.pagination); totals and comparisons are bounded by the number
of channels and currencies, so they come whole.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from skeldir.adapters.api.attribution import get_order_attribution
from skeldir.adapters.api.cohort_schemas import CohortPage
from skeldir.adapters.api.auth import Principal, require_reader
from skeldir.adapters.api.order_schemas import OrderExplanation
from skeldir.adapters.api.problem_responses import READER_ERRORS, problem_responses
from skeldir.adapters.api.report_params import (
    MODELS,
    REPORT_MAX_DAYS,
    SPLITS,
    DayRange,
    PageRequest,
    cohort_period,
    cohort_split,
    currency_filter,
    drill_down,
    day_range,
    page_request,
    performance_level,
    report_page,
    required_model,
)
from skeldir.adapters.api.report_schemas import (
    ChannelPage,
    ChannelSummary,
    DailyRevenuePage,
    ModelComparison,
    PerformancePage,
)
from skeldir.adapters.api.tenant_connection import TenantConnection
from skeldir.domains.reporting.channel_reads import channel_rows, channel_totals, model_comparison
from skeldir.domains.reporting.cohorts import cohorts, no_customer
from skeldir.domains.reporting.daily_revenue_reads import daily_revenue_rows
from skeldir.domains.reporting.performance import KEY_FIELDS, DrillDown, performance_rows
from skeldir.domains.spend.reads import reporting_currency

router = APIRouter(prefix="/api/reports", tags=["reports"])

report_days = day_range(REPORT_MAX_DAYS)


# In every route the key is checked first: without one, a request learns nothing, not even that
# a parameter is wrong.


@router.get(
    "/daily-revenue",
    summary="Gross, refunds, cancellations and net per day and currency",
    response_model=DailyRevenuePage,
    responses=READER_ERRORS,
)
async def daily_revenue(
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(report_days),
    paging: PageRequest = Depends(page_request),
    *,
    conn: TenantConnection,
) -> dict:
    report = await report_page(
        days,
        paging,
        ("currency",),
        lambda after, n: daily_revenue_rows(conn, days.start, days.end, after, n),
    )
    # `days` repeats the rows for clients written before paging.
    return {**report, "days": report["items"]}


@router.get(
    "/channels",
    summary="Revenue, refunds, net and orders per day, currency and channel under one model",
    response_model=ChannelPage,
    responses=READER_ERRORS,
)
async def channels(
    principal: Principal = Depends(require_reader),
    model: str = Depends(required_model),
    days: DayRange = Depends(report_days),
    currency: str | None = Depends(currency_filter),
    paging: PageRequest = Depends(page_request),
    *,
    conn: TenantConnection,
) -> dict:
    report = await report_page(
        days,
        paging,
        ("currency", "channel"),
        lambda after, n: channel_rows(conn, model, days.start, days.end, currency, after, n),
    )
    return {"model": model, **report}


@router.get(
    "/channels/summary",
    summary="Totals per channel and currency over the window under one model",
    response_model=ChannelSummary,
    responses=READER_ERRORS,
)
async def channel_summary(
    principal: Principal = Depends(require_reader),
    model: str = Depends(required_model),
    days: DayRange = Depends(report_days),
    currency: str | None = Depends(currency_filter),
    *,
    conn: TenantConnection,
) -> dict:
    items = await channel_totals(conn, model, days.start, days.end, currency)
    return {"model": model, "from": days.start, "to": days.end, "items": items}


@router.get(
    "/models",
    summary="Every model's net and orders per channel side by side, with totals per model",
    response_model=ModelComparison,
    responses=READER_ERRORS,
)
async def models(
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(report_days),
    currency: str | None = Depends(currency_filter),
    *,
    conn: TenantConnection,
) -> dict:
    comparison = await model_comparison(conn, days.start, days.end, currency, MODELS)
    return {"from": days.start, "to": days.end, **comparison}


@router.get(
    "/performance",
    summary="Spend, attributed revenue, orders and new customers with ROAS, CPA and CAC per "
    "channel, platform, campaign, ad set or ad under one model",
    response_model=PerformancePage,
    responses=READER_ERRORS,
)
async def performance(
    principal: Principal = Depends(require_reader),
    model: str = Depends(required_model),
    days: DayRange = Depends(report_days),
    level: str = Depends(performance_level),
    currency: str | None = Depends(currency_filter),
    drill: DrillDown = Depends(drill_down),
    paging: PageRequest = Depends(page_request),
    *,
    conn: TenantConnection,
) -> dict:
    report = await report_page(
        days,
        paging,
        tuple(f"key_{i}" for i in range(len(KEY_FIELDS[level]))),
        lambda after, n: performance_rows(
            conn, model, level, days.start, days.end, currency, after, n, drill
        ),
        day_field=None,
    )
    return {"model": model, "level": level, **report}


# One implementation under the reports prefix too, where dashboards look for it.
router.add_api_route(
    "/orders/{provider}/{external_order_id}",
    get_order_attribution,
    methods=["GET"],
    summary="One order's revenue, path and credits by model",
    response_model=OrderExplanation,
    responses=problem_responses(401, 403, 404, 409, 422),
)


@router.get(
    "/cohorts",
    summary="Customers acquired per period, their revenue in each later period, repeat rate",
    response_model=CohortPage,
    responses=READER_ERRORS,
)
async def cohort_report(
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(report_days),
    period: str = Depends(cohort_period),
    model: str | None = Depends(cohort_split),
    paging: PageRequest = Depends(page_request),
    *,
    conn: TenantConnection,
) -> dict:
    async def read(after: tuple | None, n: int) -> list[dict]:
        rows = await cohorts(conn, period, days.start, days.end, model)
        if after is not None:
            rows = [r for r in rows if (r["cohort"], *([r["channel"]] if model else []))
                    > tuple(after)]
        return rows[:n]

    report = await report_page(days, paging, ("channel",) if model else (), read, day_field="cohort")
    return {
        **report,
        "period": period,
        "by": SPLITS[0] if model else None,
        "model": model,
        "reporting_currency": await reporting_currency(conn),
        "no_customer": await no_customer(conn, period, days.start, days.end),
    }
