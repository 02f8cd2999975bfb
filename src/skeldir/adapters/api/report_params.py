"""Query parameters shared by the report and export endpoints, checked once, documented once."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import HTTPException, Query
from pydantic import BeforeValidator

from skeldir.adapters.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, page
from skeldir.domains.attribution.models import DATA_DRIVEN_MODELS, RULE_BASED_MODELS
from skeldir.domains.reporting.performance import LEVELS, DrillDown
from skeldir.domains.reporting.cohorts import PERIODS

MODELS = RULE_BASED_MODELS + DATA_DRIVEN_MODELS
REPORT_MAX_DAYS = 366
# Exports stream in constant memory, so a longer window costs time, never memory.
EXPORT_MAX_DAYS = 3660

_MODEL_HELP = (
    f"Attribution model: {', '.join(MODELS)}. `markov` and `shapley` have figures only for "
    "orders attributed after their weights were learned."
)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _written_as_a_day(value: object) -> object:
    # Lax parsing would read a number ("0", 1700000000) as a Unix time.
    if isinstance(value, date) or (isinstance(value, str) and _DAY.fullmatch(value)):
        return value
    raise ValueError("a day is written YYYY-MM-DD")


IsoDay = Annotated[date, BeforeValidator(_written_as_a_day)]


@dataclass(frozen=True)
class DayRange:
    """UTC days, both included."""

    start: date
    end: date


def day_range(max_days: int) -> Callable[..., DayRange]:
    def dependency(
        start: Annotated[IsoDay, Query(alias="from",
                                       description="First UTC day (YYYY-MM-DD), included")],
        end: Annotated[IsoDay, Query(alias="to",
                                     description="Last UTC day (YYYY-MM-DD), included")],
    ) -> DayRange:
        if end < start or (end - start).days >= max_days:
            raise HTTPException(400, f"'to' must be on or after 'from', at most {max_days} days")
        return DayRange(start, end)

    return dependency


def _known(model: str) -> str:
    # A 400 rather than an enum's 422: a model may be added without a schema change.
    if model not in MODELS:
        raise HTTPException(400, f"unknown model; known: {', '.join(MODELS)}")
    return model


def required_model(
    model: str = Query(description=_MODEL_HELP, examples=["linear"]),
) -> str:
    return _known(model)


def optional_model(
    model: str | None = Query(default=None, description=_MODEL_HELP + " Omitted: every model."),
) -> str | None:
    return None if model is None else _known(model)


def currency_filter(
    currency: str | None = Query(
        default=None,
        pattern="^[A-Z]{3}$",
        description="Only orders in this ISO 4217 currency; amounts are never converted",
        examples=["USD"],
    ),
) -> str | None:
    return currency


def performance_level(
    level: str = Query(
        default="campaign", description=f"Rows per: {', '.join(LEVELS)}", examples=["campaign"]
    ),
) -> str:
    if level not in LEVELS:
        raise HTTPException(400, f"unknown level; known: {', '.join(LEVELS)}")
    return level


def drill_down(
    channel: str | None = Query(
        default=None, max_length=100,
        description="Only revenue credited to this channel, and the spend of the platforms "
        "counted under it (drill down from level=channel)",
    ),
    platform: str | None = Query(
        default=None, max_length=100, description="Only this platform's revenue and spend"
    ),
    campaign_id: str | None = Query(
        default=None, max_length=200, description="Only this campaign's revenue and spend"
    ),
) -> DrillDown:
    if any("\x00" in value for value in (channel, platform, campaign_id) if value):
        # No stored id holds a NUL, and PostgreSQL refuses one even as a query parameter.
        raise HTTPException(400, "channel, platform and campaign_id cannot hold a NUL character")
    return DrillDown(channel, platform, campaign_id)
SPLITS = ("first_touch_channel",)


def cohort_period(
    period: str = Query(default="month", description="`month` (UTC) or `week` (ISO, from Monday)"),
) -> str:
    if period not in PERIODS:
        raise HTTPException(400, f"unknown period; known: {', '.join(PERIODS)}")
    return period


def cohort_split(
    by: str | None = Query(
        default=None,
        description="`first_touch_channel`: one row per cohort and acquiring channel, the"
        " channel `model` credits the most of the customer's first order (default model"
        " `first_touch`: the channel of its first touch)"),
    model: str | None = Query(
        default=None, description="With `by`: the model naming the acquiring channel; "
        + ", ".join(MODELS)),
) -> str | None:
    """The model naming the acquiring channel, or None for no split."""
    if by is None:
        if model is not None:
            raise HTTPException(400, "model needs by=first_touch_channel")
        return None
    if by not in SPLITS:
        raise HTTPException(400, f"unknown split; known: {', '.join(SPLITS)}")
    return required_model(model or "first_touch")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None


def page_request(
    limit: int = Query(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Most items on this page"
    ),
    cursor: str | None = Query(
        default=None, description="`next_cursor` of the previous page; omitted for the first"
    ),
) -> PageRequest:
    return PageRequest(limit, cursor)


def day_key_after(cursor: str | None, arity: int) -> tuple | None:
    """The (day, text, ...) sort key a cursor names: a day first, then `arity - 1` strings."""
    values = decode_cursor(cursor, arity)
    if values is None:
        return None
    try:
        if not all(isinstance(value, str) and "\x00" not in value for value in values):
            raise ValueError
        return (date.fromisoformat(values[0]), *values[1:])
    except ValueError:
        raise HTTPException(400, "the cursor is not one this API returned") from None


def text_key_after(cursor: str | None, arity: int) -> tuple | None:
    """The sort key of `arity` strings a cursor names."""
    values = decode_cursor(cursor, arity)
    if values is None:
        return None
    if not all(isinstance(value, str) and "\x00" not in value for value in values):
        raise HTTPException(400, "the cursor is not one this API returned")
    return tuple(values)


async def report_page(
    days: DayRange,
    paging: PageRequest,
    sort_fields: tuple[str, ...],
    read: Callable[[tuple | None, int], Awaitable[list]],
    *,
    day_field: str | None = "day",
) -> dict:
    """One keyset page of a report sorted by day (the rows' `day_field`), then by the text
    `sort_fields` (by those alone when `day_field` is None): `read(after, n)` fetches at most n
    rows after the sort key `after` (None: from the start)."""
    if day_field is not None:
        after = day_key_after(paging.cursor, 1 + len(sort_fields))

        def sort_key(r) -> tuple:
            return (r[day_field].isoformat(), *(r[f] for f in sort_fields))
    else:
        after = text_key_after(paging.cursor, len(sort_fields))

        def sort_key(r) -> tuple:
            return tuple(r[f] for f in sort_fields)

    rows = await read(after, paging.limit + 1)
    items, next_cursor = page(rows, paging.limit, sort_key)
    return {"from": days.start, "to": days.end, "items": items, "next_cursor": next_cursor}
