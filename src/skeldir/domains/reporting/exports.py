"""Exports streamed in constant memory, whatever their size.

A row source reads one server-side cursor a chunk at a time inside the caller's tenant
transaction and yields each chunk as a list of tuples; an encoder turns each chunk into bytes as
it comes (CSV text, or one Parquet row group) and keeps nothing of it. So memory holds one chunk,
never the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import asyncpg

from skeldir.base.observability import metrics
from skeldir.domains.attribution.packing import unpack
from skeldir.domains.reporting.performance import ALL, KEY_FIELDS, DrillDown, performance_rows
from skeldir.domains.reporting import cohorts

if TYPE_CHECKING:
    import pyarrow as pa

Chunk = list[tuple]


# pyarrow (about 26 MiB resident) is imported by the first Parquet export, not by every process
# that imports this module: the API and the worker import it at start and rarely export Parquet.
@dataclass(frozen=True)
class Export:
    name: str
    # (column, its pyarrow type by name: "string", "date32", "int64", "decimal128(38, 6)")
    columns: tuple[tuple[str, str], ...]

    @property
    def schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([(name, _arrow_type(pa, kind)) for name, kind in self.columns])


CHANNEL_PERFORMANCE = Export(
    "channel_performance",
    (
        ("model", "string"),
        ("day", "date32"),
        ("currency", "string"),
        ("channel", "string"),
        ("revenue_cents", "int64"),
        ("refunds_cents", "int64"),
        ("net_cents", "int64"),
        ("orders", "int64"),
    ),
)

ALLOCATIONS = Export(
    "allocations",
    (
        ("day", "date32"),
        ("currency", "string"),
        ("provider", "string"),
        ("external_order_id", "string"),
        ("model", "string"),
        ("channel", "string"),
        ("net_cents", "int64"),
        ("gross_cents", "int64"),
    ),
)

PERFORMANCE = Export(
    "performance",
    (
        ("model", "string"),
        ("level", "string"),
        ("channel", "string"),
        ("platform", "string"),
        ("campaign_id", "string"),
        ("campaign_name", "string"),
        ("adset_id", "string"),
        ("adset_name", "string"),
        ("ad_id", "string"),
        ("ad_name", "string"),
        ("currency", "string"),
        ("spend_cents", "int64"),
        ("revenue_cents", "int64"),
        ("orders", "decimal128(38, 6)"),
        ("new_customers", "decimal128(38, 6)"),
        ("new_customer_revenue_cents", "int64"),
        ("roas", "decimal128(38, 4)"),
        ("cpa_cents", "int64"),
        ("cac_cents", "int64"),
        ("rate_missing", "bool_"),
    ),
)
_DECIMALS = ("orders", "new_customers", "roas")
# One row per cohort (and acquiring channel) and period of its curve, then one per period of
# the orders without a customer, whose cohort and channel are empty (see docs/customers.md).
COHORTS = Export(
    "cohorts",
    (
        ("cohort", "date32"),
        ("channel", "string"),
        ("cohort_customers", "int64"),
        ("repeat_customers", "int64"),
        ("offset", "int64"),
        ("period_start", "date32"),
        ("customers", "int64"),
        ("orders", "int64"),
        ("revenue_cents", "int64"),
        ("cumulative_revenue_cents", "int64"),
        ("unconverted_orders", "int64"),
    ),
)

# Primary-key order, so the rows come off the index without a sort.
_CHANNEL_PERFORMANCE_SQL = """
SELECT model, day, currency, channel, revenue_minor, refunds_minor, net_minor, orders
FROM channel_daily
WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR model = $3)
  AND (revenue_minor <> 0 OR refunds_minor <> 0 OR net_minor <> 0 OR orders <> 0)
ORDER BY model, day, currency, channel
"""

_ALLOCATIONS_SQL = """
SELECT a.day, a.currency, o.provider, o.external_order_id, a.models, a.channels, a.credits
FROM order_attributions a JOIN orders o USING (tenant_id, order_id)
WHERE a.day BETWEEN $1 AND $2 AND ($3::text IS NULL OR $3 = ANY (a.models))
ORDER BY a.day, a.order_id
"""


async def _cursor(conn: asyncpg.Connection, sql: str, *args) -> asyncpg.cursor.Cursor:
    # A generic plan cached by the pool while the tables were small can join a large export
    # row by row against a whole table; an export is rare and long, so it is planned afresh.
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    return await conn.cursor(sql, *args)


async def channel_performance_rows(
    conn: asyncpg.Connection, start: date, end: date, model: str | None, chunk_rows: int = 5000
) -> AsyncIterator[Chunk]:
    cursor = await _cursor(conn, _CHANNEL_PERFORMANCE_SQL, start, end, model)
    while records := await cursor.fetch(chunk_rows):
        yield [tuple(r) for r in records]


async def allocation_rows(
    conn: asyncpg.Connection, start: date, end: date, model: str | None, chunk_orders: int = 2000
) -> AsyncIterator[Chunk]:
    """One row per order, model and channel that the model credits (net or gross non-zero)."""
    cursor = await _cursor(conn, _ALLOCATIONS_SQL, start, end, model)
    while records := await cursor.fetch(chunk_orders):
        rows = [row for record in records for row in _order_allocations(record, model)]
        if rows:
            yield rows


async def cohort_rows(
    conn: asyncpg.Connection, period: str, start: date, end: date, model: str | None
) -> AsyncIterator[Chunk]:
    """The cohort report as rows: its rows are few (a year of periods at most), so one chunk."""
    rows = [
        (
            row["cohort"],
            row["channel"],
            row["customers"],
            row["repeat_customers"],
            p["offset"],
            p["start"],
            p["customers"],
            p["orders"],
            p["revenue_cents"],
            p["cumulative_revenue_cents"],
            p["unconverted_orders"],
        )
        for row in await cohorts.cohorts(conn, period, start, end, model)
        for p in row["periods"]
    ]
    anonymous = await cohorts.no_customer(conn, period, start, end)
    rows += [
        (
            None,
            None,
            None,
            None,
            None,
            p["start"],
            None,
            p["orders"],
            p["revenue_cents"],
            None,
            p["unconverted_orders"],
        )
        for p in anonymous["periods"]
    ]
    yield rows


def _order_allocations(record: asyncpg.Record, only_model: str | None) -> list[tuple]:
    models, channels = record["models"], record["channels"]
    credits = unpack(record["credits"], len(models), len(channels)).tolist()
    order = (record["day"], record["currency"], record["provider"], record["external_order_id"])
    rows = []
    for m, model in enumerate(models):
        if only_model is not None and model != only_model:
            continue
        for channel, (net, gross) in zip(channels, credits, strict=True):
            if net[m] or gross[m]:
                rows.append((*order, model, channel, net[m], gross[m]))
    return rows


async def performance_export_rows(
    conn: asyncpg.Connection,
    model: str,
    level: str,
    start: date,
    end: date,
    currency: str | None,
    drill: DrillDown = ALL,
    chunk_rows: int = 5000,
) -> AsyncIterator[Chunk]:
    """The performance report's rows, a keyset page per chunk (the report's own reader)."""
    after = None
    fields = [name for name, _type in PERFORMANCE.columns[2:]]
    while rows := await performance_rows(
        conn, model, level, start, end, currency, after, chunk_rows, drill
    ):
        yield [
            (model, level, *(_typed(name, row[name]) for name in fields)) for row in rows
        ]
        if len(rows) < chunk_rows:
            return
        after = tuple(rows[-1][f"key_{i}"] for i in range(len(KEY_FIELDS[level])))


def _typed(name: str, value: object) -> object:
    return Decimal(value) if name in _DECIMALS and value is not None else value


async def counted(chunks: AsyncIterator[Chunk], export: Export, fmt: str) -> AsyncIterator[Chunk]:
    rows = metrics.EXPORT_ROWS.labels(export=export.name, format=fmt)
    async for chunk in chunks:
        rows.inc(len(chunk))
        yield chunk


async def csv_bytes(export: Export, chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    """A header line, then each chunk's lines (RFC 4180, UTF-8, days as YYYY-MM-DD). Every text
    cell is quoted: a spreadsheet set to a `;` separator (the default in much of Europe) would
    split an unquoted cell that holds one. Numbers are not, so they stay numbers."""
    buffer = io.StringIO()
    # The header is ours (plain names), so it is written as plain as ever.
    csv.writer(buffer).writerow(name for name, _type in export.columns)
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC)
    yield _drain_text(buffer)
    async for chunk in chunks:
        writer.writerows([[_inert(value) for value in row] for row in chunk])
        yield _drain_text(buffer)


# A spreadsheet runs a cell that starts with one of these as a formula; order ids and channel
# names come from senders and tenants, so text cells get a leading quote (OWASP's advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value


def _drain_text(buffer: io.StringIO) -> bytes:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text.encode()


async def parquet_bytes(export: Export, chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    """One row group per chunk; the footer last. A file with no rows is still a valid file."""
    import pyarrow.parquet as pq

    sink = _DrainedSink()
    writer = pq.ParquetWriter(sink, export.schema)
    try:
        async for chunk in chunks:
            writer.write_table(_table(export, chunk), row_group_size=len(chunk))
            yield sink.drain()
    finally:
        writer.close()
    yield sink.drain()


def _arrow_type(pa, kind: str):
    """A pyarrow type from its name, with arguments where it takes them: "decimal128(38, 6)"."""
    name, _, arguments = kind.partition("(")
    return getattr(pa, name)(*(int(a) for a in arguments.rstrip(")").split(",") if a.strip()))


def _table(export: Export, chunk: Sequence[tuple]) -> pa.Table:
    import pyarrow as pa

    schema = export.schema
    columns = zip(*chunk, strict=True)
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, schema)],
        schema=schema,
    )


class _DrainedSink(io.RawIOBase):
    """A write-only file whose bytes are taken away as they come. `tell` counts every byte ever
    written: the Parquet footer records row group offsets from it."""

    def __init__(self) -> None:
        super().__init__()
        self._pieces: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        piece = bytes(data)
        self._pieces.append(piece)
        self._written += len(piece)
        return len(piece)

    def tell(self) -> int:
        return self._written

    def drain(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data
