"""Export encoders on hand-made chunks: CSV cells a spreadsheet would run are made inert,
numbers are left as they are, and Parquet keeps every value exactly."""

from __future__ import annotations

import csv
import io
from datetime import date

import pyarrow.parquet as pq
import pytest

from skeldir.domains.reporting.exports import ALLOCATIONS, csv_bytes, parquet_bytes

HOSTILE = [
    (date(2026, 3, 1), "USD", "shopify", "=HYPERLINK(\"http://x\")", "linear", "email", -150, 0),
    (date(2026, 3, 1), "USD", "shopify", "@SUM(A1)", "linear", "+cmd", 300, 300),
    (date(2026, 3, 2), "JPY", "stripe", "ord-7", "linear", "paid_search", 1200, 1200),
]


async def chunks():
    yield HOSTILE[:2]
    yield HOSTILE[2:]


async def collect(stream) -> bytes:
    return b"".join([piece async for piece in stream])


@pytest.mark.anyio
async def test_csv_cells_that_would_run_as_formulas_are_quoted():
    rows = list(csv.reader(io.StringIO((await collect(csv_bytes(ALLOCATIONS, chunks()))).decode())))
    assert rows[0] == [name for name, _ in ALLOCATIONS.columns]
    assert rows[1][3] == "'=HYPERLINK(\"http://x\")" and rows[1][6] == "-150"
    assert rows[2][3] == "'@SUM(A1)" and rows[2][5] == "'+cmd"
    assert rows[3][3:6] == ["ord-7", "linear", "paid_search"]


@pytest.mark.anyio
async def test_parquet_keeps_values_exactly():
    table = pq.read_table(io.BytesIO(await collect(parquet_bytes(ALLOCATIONS, chunks()))))
    assert [tuple(row.values()) for row in table.to_pylist()] == HOSTILE
