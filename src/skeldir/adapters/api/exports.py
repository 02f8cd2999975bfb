"""Export endpoints: channel performance and per-order allocations as CSV or Parquet files,
streamed as they are read (see reporting.exports)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from enum import Enum

import asyncpg
from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from skeldir.adapters.api.auth import Principal, require_reader
from skeldir.adapters.api.problem_responses import READER_ERRORS
from skeldir.adapters.api.report_params import EXPORT_MAX_DAYS, DayRange, day_range, optional_model
from skeldir.base.db import tenant_transaction
from skeldir.domains.reporting import exports

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
        "description": "The file, streamed (no Content-Length)",
        "content": {media_type: {} for media_type in _MEDIA_TYPES.values()},
    },
    **READER_ERRORS,
}
export_days = day_range(EXPORT_MAX_DAYS)

RowSource = Callable[[asyncpg.Connection], AsyncIterator[exports.Chunk]]


def _stream(
    request: Request,
    principal: Principal,
    export: exports.Export,
    file_format: FileFormat,
    rows: RowSource,
    filename: str,
) -> StreamingResponse:
    pool = request.app.state.pool
    encode = _ENCODERS[file_format]

    # The transaction opens when the first byte is asked for and stays open to the last: the
    # server-side cursor lives in it. Parameters were checked before, so a refusal is a status.
    async def body() -> AsyncIterator[bytes]:
        async with tenant_transaction(pool, principal.tenant_id) as conn:
            chunks = exports.counted(rows(conn), export, file_format.value)
            async for piece in encode(export, chunks):
                yield piece

    return StreamingResponse(
        body(),
        media_type=_MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}.{file_format.value}"'},
    )


def _filename(name: str, days: DayRange, model: str | None) -> str:
    return "_".join([name, *([model] if model else []), str(days.start), str(days.end)])


@router.get(
    "/channel-performance.{file_format}",
    summary="Channel performance per model, day, currency and channel as a CSV or Parquet file",
    response_class=StreamingResponse,
    responses=_FILE_RESPONSE,
)
async def channel_performance(
    request: Request,
    file_format: FileFormat,
    # First: a request without a valid key learns nothing, not even that a parameter is wrong.
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(export_days),
    model: str | None = Depends(optional_model),
) -> StreamingResponse:
    return _stream(
        request,
        principal,
        exports.CHANNEL_PERFORMANCE,
        file_format,
        lambda conn: exports.channel_performance_rows(conn, days.start, days.end, model),
        _filename("channel-performance", days, model),
    )


@router.get(
    "/allocations.{file_format}",
    summary="Each order's net and gross credit per model and channel as a CSV or Parquet file",
    response_class=StreamingResponse,
    responses=_FILE_RESPONSE,
)
async def allocations(
    request: Request,
    file_format: FileFormat,
    principal: Principal = Depends(require_reader),
    days: DayRange = Depends(export_days),
    model: str | None = Depends(optional_model),
) -> StreamingResponse:
    return _stream(
        request,
        principal,
        exports.ALLOCATIONS,
        file_format,
        lambda conn: exports.allocation_rows(conn, days.start, days.end, model),
        _filename("allocations", days, model),
    )
