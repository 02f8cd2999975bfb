"""Export endpoints: channel performance, per-order allocations and customer cohorts as CSV or
Parquet files.

An export is encoded as it is read (see reporting.exports) into a spooled file, and sent once
its transaction has ended: a client that reads slowly, or never, holds a file for at most the
send timeout, never a database connection or transaction. A tenant runs a bounded number of
exports at once (api.long_operations).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import date
from enum import Enum
from typing import IO

import asyncpg
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from skeldir.adapters.api.auth import Principal, require_reader
from skeldir.adapters.api.problem_responses import READER_ERRORS
from skeldir.adapters.api.report_params import (
    EXPORT_MAX_DAYS,
    REPORT_MAX_DAYS,
    DayRange,
    cohort_period,
    cohort_split,
    currency_filter,
    day_range,
    drill_down,
    optional_model,
    performance_level,
    required_model,
)
from skeldir.base.db import tenant_transaction
from skeldir.domains.reporting import exports
from skeldir.domains.reporting.performance import DrillDown

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/exports", tags=["exports"])


class FileFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


_MEDIA_TYPES = {
    FileFormat.csv: "text/csv; charset=utf-8",
    FileFormat.parquet: "application/vnd.apache.parquet",
}
_ENCODERS = {FileFormat.csv: exports.csv_bytes, FileFormat.parquet: exports.parquet_bytes}
_FILE_RESPONSE = {
    200: {
        "description": "The file",
        "content": {media_type: {} for media_type in _MEDIA_TYPES.values()},
    },
    **READER_ERRORS,
}
export_days = day_range(EXPORT_MAX_DAYS)

RowSource = Callable[[asyncpg.Connection], AsyncIterator[exports.Chunk]]
# The rows of an export for (start day, end day, model or None for every model).
RowReader = Callable[[asyncpg.Connection, date, date, str | None], AsyncIterator[exports.Chunk]]


_SEND_PIECE_BYTES = 64 * 1024


class SpooledFileResponse(Response):
    """Sends a spooled file in pieces; a piece the client does not take within `send_timeout`
    seconds ends the response (the connection is closed), so a reader that stalls frees its
    file and its tenant's slot."""

    def __init__(
        self,
        spool: IO[bytes],
        *,
        send_timeout: float,
        media_type: str,
        headers: dict[str, str],
        on_done: Callable[[], None],
    ) -> None:
        super().__init__(media_type=media_type, headers=headers)
        self.spool = spool
        self.send_timeout = send_timeout
        self.on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._send_within(send, {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers,
            })
            self.spool.seek(0)
            while piece := self.spool.read(_SEND_PIECE_BYTES):
                await self._send_within(
                    send, {"type": "http.response.body", "body": piece, "more_body": True}
                )
            await self._send_within(send, {"type": "http.response.body", "body": b""})
        except TimeoutError:
            log.warning("export_send_timed_out", extra={"seconds": self.send_timeout})
        finally:
            self.spool.close()
            self.on_done()

    async def _send_within(self, send: Send, message: dict) -> None:
        await asyncio.wait_for(send(message), self.send_timeout or None)


async def _spool(
    pool: asyncpg.Pool,
    principal: Principal,
    encoded: Callable[[asyncpg.Connection], AsyncIterator[bytes]],
    memory_bytes: int,
) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=memory_bytes)
    try:
        async with tenant_transaction(pool, principal.tenant_id) as conn:
            async for piece in encoded(conn):
                spool.write(piece)
    except BaseException:
        spool.close()
        raise
    return spool


async def _export(
    request: Request,
    principal: Principal,
    export: exports.Export,
    file_format: FileFormat,
    rows: RowSource,
    filename: str,
) -> Response:
    state = request.app.state
    settings = state.settings
    encode = _ENCODERS[file_format]

    def encoded(conn: asyncpg.Connection) -> AsyncIterator[bytes]:
        return encode(export, exports.counted(rows(conn), export, file_format.value))

    slots = state.long_operations
    slots.take(principal.tenant_id, "exports")
    try:
        spool = await _spool(state.reads.pool, principal, encoded, settings.export_spool_memory_bytes)
    except BaseException:
        slots.give_back(principal.tenant_id)
        raise
    return SpooledFileResponse(
        spool,
        send_timeout=settings.export_send_timeout_seconds,
        media_type=_MEDIA_TYPES[file_format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.{file_format.value}"',
            "Content-Length": str(spool.tell()),
        },
        on_done=lambda: slots.give_back(principal.tenant_id),
    )


def _filename(name: str, days: DayRange, model: str | None) -> str:
    return "_".join([name, *([model] if model else []), str(days.start), str(days.end)])


def _add_export_route(name: str, export: exports.Export, read: RowReader, summary: str) -> None:
    """GET /api/exports/{name}.csv or .parquet: the rows `read` gives for the days and model
    asked for, in a file named after them."""

    async def endpoint(
        request: Request,
        file_format: FileFormat,
        # First: a request without a valid key learns nothing, not even that a parameter is
        # wrong.
        principal: Principal = Depends(require_reader),
        days: DayRange = Depends(export_days),
        model: str | None = Depends(optional_model),
    ) -> Response:
        return await _export(
            request,
            principal,
            export,
            file_format,
            lambda conn: read(conn, days.start, days.end, model),
            _filename(name, days, model),
        )

    router.add_api_route(
        f"/{name}.{{file_format}}",
        endpoint,
        methods=["GET"],
        # The operation ids in the OpenAPI document are made from this name.
        name=name.replace("-", "_"),
        summary=summary,
        response_class=StreamingResponse,
        responses=_FILE_RESPONSE,
    )


_add_export_route(
    "channel-performance",
    exports.CHANNEL_PERFORMANCE,
    exports.channel_performance_rows,
    "Channel performance per model, day, currency and channel as a CSV or Parquet file",
)
_add_export_route(
    "allocations",
    exports.ALLOCATIONS,
    exports.allocation_rows,
    "Each order's net and gross credit per model and channel as a CSV or Parquet file",
)


@router.get(
    "/performance.{file_format}",
    name="performance",
    summary="The performance report (spend, revenue, orders, new customers, ROAS, CPA, CAC) of "
    "one model and level as a CSV or Parquet file",
    response_class=StreamingResponse,
    responses=_FILE_RESPONSE,
)
async def performance_export(
    request: Request,
    file_format: FileFormat,
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(export_days),
    model: str = Depends(required_model),
    level: str = Depends(performance_level),
    currency: str | None = Depends(currency_filter),
    drill: DrillDown = Depends(drill_down),
) -> Response:
    return await _export(
        request,
        principal,
        exports.PERFORMANCE,
        file_format,
        lambda conn: exports.performance_export_rows(
            conn, model, level, days.start, days.end, currency, drill
        ),
        _filename(f"performance_{level}", days, model),
    )


# The cohorts' curves grow with the square of the window's periods: a report's window at most.
cohort_days = day_range(REPORT_MAX_DAYS)


@router.get(
    "/cohorts.{file_format}",
    name="cohorts",
    summary="The cohort report (one row per cohort, channel and period; then the orders without"
    " a customer) as a CSV or Parquet file",
    response_class=StreamingResponse,
    responses=_FILE_RESPONSE,
)
async def cohort_export(
    request: Request,
    file_format: FileFormat,
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(cohort_days),
    period: str = Depends(cohort_period),
    model: str | None = Depends(cohort_split),
) -> Response:
    return await _export(
        request,
        principal,
        exports.COHORTS,
        file_format,
        lambda conn: exports.cohort_rows(conn, period, days.start, days.end, model),
        "_".join(["cohorts", period, *([model] if model else []), str(days.start),
                  str(days.end)]),
    )
