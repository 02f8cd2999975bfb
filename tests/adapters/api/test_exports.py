"""Exports over HTTP and in the domain (real app, real PostgreSQL): CSV and Parquet files that
parse back to the JSON report's rows and sums, read scope, tenant isolation, and a large export
that streams in many pieces."""

from __future__ import annotations

import csv
import io
from datetime import date

import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY

from db_helpers import create_tenant
from report_data import WINDOW
from skeldir.base.config import Settings
from skeldir.base.db import create_pool, owner_connection, tenant_transaction
from skeldir.domains.reporting import exports

RULE_BASED = ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
              "position_based")
FORMATS = ("csv", "parquet")
INTEGERS = {"revenue_cents", "refunds_cents", "net_cents", "gross_cents", "orders"}
BULK_ORDERS = 10_000
BULK_WINDOW = {"from": "2025-06-01", "to": "2025-06-30"}


@pytest.fixture(scope="module")
def bulk(database: Settings):
    """A tenant with BULK_ORDERS attributed orders over June 2025, each credited whole to email
    under two models: 2 * BULK_ORDERS allocation rows, written straight into the tables."""
    tenant = create_tenant(database, "bulk")
    with owner_connection(database) as conn:
        conn.execute(
            "WITH o AS ("
            " INSERT INTO orders (tenant_id, provider, external_order_id, has_snapshot, currency,"
            "                     total_minor, ordered_at)"
            " SELECT %(t)s, 'shopify', 'bulk-' || n, true, 'USD', 100 + n,"
            "        timestamptz '2025-06-01 12:00+00' + (n %% 30) * interval '1 day'"
            " FROM generate_series(1, %(n)s) n RETURNING order_id, total_minor, ordered_at)"
            " INSERT INTO order_attributions (tenant_id, order_id, day, currency, revenue_minor,"
            "   gross_minor, reporting_currency, models, model_versions, channels, credits)"
            " SELECT %(t)s, order_id, (ordered_at AT TIME ZONE 'UTC')::date, 'USD', total_minor,"
            "   total_minor, 'USD', '{first_touch,linear}', '{1,1}', '{email}',"
            # Per channel: net then gross, each per model (see attribution.packing).
            "   int8send(total_minor) || int8send(total_minor) || int8send(total_minor)"
            "   || int8send(total_minor)"
            " FROM o",
            {"t": tenant.tenant_id, "n": BULK_ORDERS},
        )
    return tenant


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def download(client, key, path: str, **params):
    return client.get(path, params=params, headers=bearer(key))


def parse(file_format: str, content: bytes) -> list[dict]:
    """The file's rows with days as YYYY-MM-DD and amounts as ints, whichever the format."""
    if file_format == "csv":
        rows = list(csv.DictReader(io.StringIO(content.decode())))
    else:
        rows = pq.read_table(io.BytesIO(content)).to_pylist()
    return [{k: int(v) if k in INTEGERS else str(v) for k, v in row.items()} for row in rows]


def sort_key(row: dict) -> tuple:
    return row["model"], row["day"], row["currency"], row["channel"]


def report_rows(client, key, model: str) -> list[dict]:
    body = client.get("/api/reports/channels", params={"model": model, "limit": 1000, **WINDOW},
                      headers=bearer(key)).json()
    assert body["next_cursor"] is None
    return [{"model": model, **row} for row in body["items"]]


@pytest.mark.parametrize("file_format", FORMATS)
def test_channel_performance_files_hold_the_report_rows(client, data, file_format):
    key = data.shop.api_key
    response = download(client, key, f"/api/exports/channel-performance.{file_format}", **WINDOW)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        f'attachment; filename="channel-performance_2026-01-01_2026-01-31.{file_format}"')
    expected = [row for model in RULE_BASED for row in report_rows(client, key, model)]
    assert parse(file_format, response.content) == sorted(expected, key=sort_key)

    linear = download(client, key, f"/api/exports/channel-performance.{file_format}",
                      model="linear", **WINDOW)
    assert "_linear_" in linear.headers["content-disposition"]
    assert parse(file_format, linear.content) == report_rows(client, key, "linear")


def test_allocation_files_add_up_to_the_reports(client, data):
    key = data.shop.api_key
    files = {f: parse(f, download(client, key, f"/api/exports/allocations.{f}", **WINDOW).content)
             for f in FORMATS}
    assert files["csv"] == files["parquet"]
    rows = files["csv"]
    assert {r["model"] for r in rows} == set(RULE_BASED)
    assert set(rows[0]) == {"day", "currency", "provider", "external_order_id", "model",
                            "channel", "net_cents", "gross_cents"}

    for model in RULE_BASED:
        net: dict[str, int] = {}
        for r in rows:
            if r["model"] == model:
                net[r["currency"]] = net.get(r["currency"], 0) + r["net_cents"]
        assert net == data.net_cents, model

        summary = client.get("/api/reports/channels/summary", params={"model": model, **WINDOW},
                             headers=bearer(key)).json()["items"]
        totals: dict[tuple, list[int]] = {}
        for r in rows:
            if r["model"] == model:
                total = totals.setdefault((r["channel"], r["currency"]), [0, 0, 0])
                total[0] += r["gross_cents"]
                total[1] += r["net_cents"]
                total[2] += r["gross_cents"] != 0
        assert totals == {(s["channel"], s["currency"]): [s["revenue_cents"], s["net_cents"],
                                                          s["orders"]] for s in summary}

    explained = client.get("/api/reports/orders/shopify/5002", headers=bearer(key)).json()
    assert {(r["channel"], r["net_cents"], r["gross_cents"]) for r in rows
            if r["external_order_id"] == "5002" and r["model"] == "linear"} == {
        (a["channel"], a["cents"], a["gross_cents"])
        for a in explained["models"]["linear"]["allocations"]}

    linear = parse("csv", download(client, key, "/api/exports/allocations.csv", model="linear",
                                   **WINDOW).content)
    assert linear == [r for r in rows if r["model"] == "linear"]


@pytest.mark.parametrize("file_format", FORMATS)
def test_an_empty_window_is_a_valid_empty_file(client, data, file_format):
    response = download(client, data.shop.api_key, f"/api/exports/allocations.{file_format}",
                        **{"from": "2020-01-01", "to": "2020-01-31"})
    assert response.status_code == 200
    if file_format == "csv":
        assert response.content.decode().splitlines() == [
            "day,currency,provider,external_order_id,model,channel,net_cents,gross_cents"]
    else:
        table = pq.read_table(io.BytesIO(response.content))
        assert table.num_rows == 0 and table.schema == exports.ALLOCATIONS.schema


def test_exports_need_a_read_key_and_show_one_tenant(client, data):
    for path in ("/api/exports/allocations.csv", "/api/exports/channel-performance.parquet"):
        assert download(client, None, path, **WINDOW).status_code == 401
        assert download(client, data.shop.collect_key, path, **WINDOW).status_code == 403
        assert download(client, data.shop.webhook_key, path, **WINDOW).status_code == 403
    other = parse("csv", download(client, data.other.api_key, "/api/exports/allocations.csv",
                                  **WINDOW).content)
    assert {r["external_order_id"] for r in other} == {"5099"}
    assert {r["channel"] for r in other} == {"organic_social"}


def test_bad_export_parameters_are_problems(client, data):
    key = data.shop.api_key
    for params, status in (
        ({"model": "nope", **WINDOW}, 400),
        ({"from": "2026-02-01", "to": "2026-01-01"}, 400),
        ({"from": "2010-01-01", "to": "2026-01-01"}, 400),
    ):
        response = download(client, key, "/api/exports/allocations.csv", **params)
        assert response.status_code == status, params
        assert response.headers["content-type"].startswith("application/problem+json")
    ten_years = {"from": "2016-01-01", "to": "2025-12-31"}
    assert download(client, key, "/api/exports/allocations.csv", **ten_years).status_code == 200
    assert download(client, key, "/api/exports/allocations.xlsx", **WINDOW).status_code == 422


def exported_rows(export: str, file_format: str) -> float:
    return REGISTRY.get_sample_value("export_rows_total",
                                     {"export": export, "format": file_format}) or 0.0


@pytest.mark.anyio
async def test_a_large_export_streams_in_pieces(database, bulk):
    pool = await create_pool(database, max_size=2)
    try:
        start, end = date(2025, 6, 1), date(2025, 6, 30)
        for encode in (exports.parquet_bytes, exports.csv_bytes):
            async with tenant_transaction(pool, bulk.tenant_id) as conn:
                rows = exports.allocation_rows(conn, start, end, None, chunk_orders=1000)
                pieces = [piece async for piece in encode(exports.ALLOCATIONS, rows)]
            # A header (or Parquet's magic), one piece per 1,000 orders, then the footer.
            assert len(pieces) >= BULK_ORDERS // 1000 + 1, encode
            assert max(map(len, pieces)) < sum(map(len, pieces)) / 5
            content = b"".join(pieces)
            if encode is exports.parquet_bytes:
                assert pq.ParquetFile(io.BytesIO(content)).metadata.num_row_groups == 10
            parsed = parse("parquet" if encode is exports.parquet_bytes else "csv", content)
            assert len(parsed) == 2 * BULK_ORDERS
            assert sum(r["net_cents"] for r in parsed) == 2 * sum(
                100 + n for n in range(1, BULK_ORDERS + 1))
    finally:
        await pool.close()


def test_a_large_export_over_http_counts_its_rows(client, bulk):
    before = exported_rows("allocations", "csv")
    with client.stream("GET", "/api/exports/allocations.csv", params=BULK_WINDOW,
                       headers=bearer(bulk.api_key)) as response:
        assert response.status_code == 200
        content = b"".join(response.iter_bytes())
    rows = parse("csv", content)
    assert len(rows) == 2 * BULK_ORDERS
    assert {r["model"] for r in rows} == {"first_touch", "linear"}
    assert exported_rows("allocations", "csv") - before == 2 * BULK_ORDERS
