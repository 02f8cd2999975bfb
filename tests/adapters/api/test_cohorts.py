"""GET /api/reports/cohorts over HTTP on real PostgreSQL, against figures computed by hand: a
shop's customers acquired in January and February, their later orders, a refund booked a month
after its order, an order in a currency with no rate, a customer acquired before the window and
orders with no customer."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from db_helpers import CHAIN_STALE, create_tenant, shopify_delivery
from report_data import EMAIL, SEARCH, SOCIAL
from test_reports import assert_problem, bearer, walk

from skeldir.base.crypto import secret_box
from skeldir.base.db import create_worker_pool, tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.attribution.tenant_attribution import rules_in_force
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.ingestion.inbox import ingest

PATH = "/api/reports/cohorts"
WINDOW = {"from": "2026-01-01", "to": "2026-03-31"}

# (order, email or None, UTC time, currency, total cents, journey before the order)
ORDERS = [
    (1, "alice@example.invalid", "2026-01-10T12:00:00", "USD", 10000, [SEARCH]),
    (2, "alice@example.invalid", "2026-01-20T12:00:00", "USD", 5000, [EMAIL]),
    (3, "alice@example.invalid", "2026-02-05T12:00:00", "USD", 3000, [EMAIL]),
    (4, "bob@example.invalid", "2026-01-15T12:00:00", "USD", 4000, [SOCIAL, SEARCH]),
    # No test loads a CZK rate (fx_rates is shared by every test of the session; EUR has some).
    (5, "carol@example.invalid", "2026-02-03T12:00:00", "CZK", 2500, [EMAIL]),  # no CZK rate
    (6, "carol@example.invalid", "2026-03-01T12:00:00", "USD", 1000, []),
    (7, "dave@example.invalid", "2025-12-20T12:00:00", "USD", 6000, []),  # before the window
    (8, "dave@example.invalid", "2026-01-12T12:00:00", "USD", 7000, []),
    (9, None, "2026-01-11T12:00:00", "USD", 1500, []),
    (10, None, "2026-02-10T12:00:00", "USD", 500, []),
]
REFUND = (3, 1000, "2026-03-02T12:00:00")  # booked in March, counted with its February order


async def _order(database, pool, tenant, order, email, at, currency, cents, path) -> None:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        key = await touchpoints.tenant_stitch_key(conn, secret_box(database), tenant.tenant_id)
    ordered_at = datetime.fromisoformat(at).replace(tzinfo=timezone.utc)
    visitor = f"visitor-{order}"
    for step, url in enumerate(path):
        item = {"id": f"tp-{order}-{step}", "visitor_id": visitor, "url": url,
                "occurred_at": (ordered_at - timedelta(hours=len(path) - step)).isoformat()}
        valid = touchpoints.validate(item, 0, key, datetime.now(timezone.utc))
        assert isinstance(valid, touchpoints.Touchpoint), valid
        await touchpoints.store(pool, tenant.tenant_id, [valid], rules_in_force)
    body = {"id": 8000 + order, "currency": currency,
            "total_price": f"{cents // 100}.{cents % 100:02d}", "created_at": ordered_at.isoformat(),
            "note_attributes": [{"name": "skeldir_visitor_id", "value": visitor}],
            **({"email": email} if email else {})}
    result = await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                          provider="shopify",
                          delivery=shopify_delivery(json.dumps(body).encode(), "orders/create"),
                          chain_stale=CHAIN_STALE, stitch_key=key)
    assert result.status == "accepted", result


async def _refund(pool, tenant, order: int, cents: int, at: str) -> None:
    body = {"id": 9000 + order, "order_id": 8000 + order, "created_at": at + "Z",
            "transactions": [{"id": 9000 + order, "kind": "refund", "status": "success",
                              "currency": "USD", "amount": f"{cents // 100}.{cents % 100:02d}",
                              "created_at": at + "Z"}]}
    result = await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                          provider="shopify",
                          delivery=shopify_delivery(json.dumps(body).encode(), "refunds/create"),
                          chain_stale=CHAIN_STALE)
    assert result.status == "accepted", result


async def _attribute(pool, tenant) -> None:
    job = uuid.uuid4()
    await start_run(pool, tenant.tenant_id, job)
    outcome = await recompute_pending(pool, tenant.tenant_id, batch_size=50)
    await finish_run(pool, tenant.tenant_id, job, outcome)
    assert not outcome.more_pending


async def _build(database, orders, refund=None):
    # The worker's role: the build runs the recompute as the worker does.
    pool = await create_worker_pool(database, max_size=2)
    try:
        tenant = create_tenant(database, "cohorts")
        for order in orders:
            await _order(database, pool, tenant, *order)
        if refund:
            await _refund(pool, tenant, *refund)
        await _attribute(pool, tenant)
        return tenant
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def shop(database):
    return asyncio.run(_build(database, ORDERS, REFUND))


def cohorts(client, tenant, **params) -> dict:
    response = client.get(PATH, params={**WINDOW, **params}, headers=bearer(tenant.api_key))
    assert response.status_code == 200, response.text
    return response.json()


def curve(body: dict, cohort: str, channel: str | None = None) -> list[tuple]:
    (row,) = [r for r in body["items"] if r["cohort"] == cohort and r["channel"] == channel]
    return [(p["start"], p["customers"], p["orders"], p["revenue_cents"],
             p["cumulative_revenue_cents"], p["unconverted_orders"]) for p in row["periods"]]


def test_monthly_cohorts_equal_the_hand_computed_figures(client, shop):
    body = cohorts(client, shop)
    assert (body["period"], body["by"], body["model"], body["reporting_currency"]) == (
        "month", None, None, "USD")
    summary = [(r["cohort"], r["customers"], r["repeat_customers"], r["repeat_rate"],
                r["revenue_cents"], r["unconverted_orders"]) for r in body["items"]]
    # January: Alice (3 orders) and Bob (1); Dave was acquired in December: in no cohort.
    # February: Carol, whose first order is in CZK with no rate: her revenue is unknown.
    assert summary == [("2026-01-01", 2, 1, 0.5, 10000 + 5000 + 4000 + 3000 - 1000, 0),
                       ("2026-02-01", 1, 1, 1.0, None, 1)]
    assert curve(body, "2026-01-01") == [
        ("2026-01-01", 2, 3, 19000, 19000, 0),
        # The March refund of Alice's February order counts with the order.
        ("2026-02-01", 1, 1, 2000, 21000, 0),
        ("2026-03-01", 0, 0, 0, 21000, 0),
    ]
    assert curve(body, "2026-02-01") == [
        ("2026-02-01", 1, 1, None, None, 1),
        ("2026-03-01", 1, 1, 1000, None, 0),
    ]
    assert [p["offset"] for p in body["items"][0]["periods"]] == [0, 1, 2]
    assert body["no_customer"] == {
        "orders": 2, "revenue_cents": 2000, "unconverted_orders": 0,
        "periods": [
            {"start": "2026-01-01", "orders": 1, "revenue_cents": 1500, "unconverted_orders": 0},
            {"start": "2026-02-01", "orders": 1, "revenue_cents": 500, "unconverted_orders": 0},
            {"start": "2026-03-01", "orders": 0, "revenue_cents": 0, "unconverted_orders": 0},
        ]}
    assert body["next_cursor"] is None


def test_weekly_cohorts_start_on_monday(client, shop):
    body = cohorts(client, shop, period="week", to="2026-01-25")
    # Alice's first order (Saturday 10 January) is in the week of Monday 5 January; Bob's
    # (Thursday 15th) in the week of the 12th. Alice's second order (20th) is two weeks on.
    assert [(r["cohort"], r["customers"]) for r in body["items"]] == [
        ("2026-01-05", 1), ("2026-01-12", 1)]
    assert curve(body, "2026-01-05") == [
        ("2026-01-05", 1, 1, 10000, 10000, 0),
        ("2026-01-12", 0, 0, 0, 10000, 0),
        ("2026-01-19", 1, 1, 5000, 15000, 0),
    ]
    assert body["items"][0]["repeat_customers"] == 1  # two orders within the window


def test_cohorts_split_by_the_channel_that_acquired_them(client, shop):
    first = cohorts(client, shop, by="first_touch_channel")
    assert first["model"] == "first_touch" and first["by"] == "first_touch_channel"
    # Bob's first touch was social, Alice's search, Carol's email.
    rows = [(r["cohort"], r["channel"], r["customers"], r["revenue_cents"])
            for r in first["items"]]
    assert rows == [("2026-01-01", "organic_social", 1, 4000),
                    ("2026-01-01", "paid_search", 1, 17000),
                    ("2026-02-01", "email", 1, None)]
    # Under last touch Bob was acquired by search too.
    last = cohorts(client, shop, by="first_touch_channel", model="last_touch")
    assert [(r["cohort"], r["channel"], r["customers"], r["revenue_cents"])
            for r in last["items"]] == [("2026-01-01", "paid_search", 2, 21000),
                                        ("2026-02-01", "email", 1, None)]


def test_cohort_pages_walk_every_row_once(client, shop):
    items, pages = walk(client, shop.api_key, PATH, 1, by="first_touch_channel", **WINDOW)
    assert pages == 3
    assert [(r["cohort"], r["channel"]) for r in items] == [
        ("2026-01-01", "organic_social"), ("2026-01-01", "paid_search"), ("2026-02-01", "email")]


def test_bad_parameters_are_problems(client, shop):
    for params in ({"period": "year"}, {"model": "linear"}, {"by": "campaign"},
                   {"by": "first_touch_channel", "model": "nope"},
                   {"from": "2026-03-01", "to": "2026-01-01"}, {"cursor": "x"}):
        for path in (PATH, "/api/exports/cohorts.csv"):
            response = client.get(path, params={**WINDOW, **params},
                                  headers=bearer(shop.api_key))
            if path == PATH or "cursor" not in params:
                assert_problem(response, 400)
    assert_problem(client.get(PATH, params=WINDOW), 401)
    assert_problem(client.get("/api/exports/cohorts.csv", params=WINDOW), 401)
    longer = {"from": "2025-01-01", "to": "2026-03-31"}  # an export's window is a report's
    assert_problem(client.get("/api/exports/cohorts.csv", params=longer,
                              headers=bearer(shop.api_key)), 400)


def test_an_earlier_order_arriving_later_moves_the_customer_to_its_cohort(client, database):
    eve = "eve@example.invalid"
    tenant = asyncio.run(_build(database, [(1, eve, "2026-02-10T12:00:00", "USD", 2000, [])]))
    assert [(r["cohort"], r["customers"]) for r in cohorts(client, tenant)["items"]] == [
        ("2026-02-01", 1)]

    async def earlier():
        pool = await create_worker_pool(database, max_size=2)
        try:
            await _order(database, pool, tenant, 2, eve, "2026-01-05T12:00:00", "USD", 3000, [])
        finally:
            await pool.close()

    asyncio.run(earlier())
    body = cohorts(client, tenant)
    assert [(r["cohort"], r["customers"], r["repeat_customers"]) for r in body["items"]] == [
        ("2026-01-01", 1, 1)]
    assert curve(body, "2026-01-01") == [
        ("2026-01-01", 1, 1, 3000, 3000, 0),
        ("2026-02-01", 1, 1, 2000, 5000, 0),
        ("2026-03-01", 0, 0, 0, 5000, 0),
    ]


def exported(client, tenant, file_format: str, **params) -> list[dict]:
    response = client.get(f"/api/exports/cohorts.{file_format}", params={**WINDOW, **params},
                          headers=bearer(tenant.api_key))
    assert response.status_code == 200, response.text
    if file_format == "csv":
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        # CSV has no null: an empty cell is one.
        return [{k: None if v == "" else v if k in ("channel",) or "start" in k or k == "cohort"
                 else int(float(v)) for k, v in row.items()} for row in rows]
    return [{k: v.isoformat() if isinstance(v, date) else v for k, v in row.items()}
            for row in pq.read_table(io.BytesIO(response.content)).to_pylist()]


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_the_cohort_files_hold_the_reports_curves_then_the_orders_without_a_customer(
        client, shop, file_format):
    rows = exported(client, shop, file_format, by="first_touch_channel")
    body = cohorts(client, shop, by="first_touch_channel")
    expected = [
        {"cohort": r["cohort"], "channel": r["channel"], "cohort_customers": r["customers"],
         "repeat_customers": r["repeat_customers"], "offset": p["offset"],
         "period_start": p["start"], "customers": p["customers"], "orders": p["orders"],
         "revenue_cents": p["revenue_cents"],
         "cumulative_revenue_cents": p["cumulative_revenue_cents"],
         "unconverted_orders": p["unconverted_orders"]}
        for r in body["items"] for p in r["periods"]]
    expected += [
        {"cohort": None, "channel": None, "cohort_customers": None, "repeat_customers": None,
         "offset": None, "period_start": p["start"], "customers": None, "orders": p["orders"],
         "revenue_cents": p["revenue_cents"], "cumulative_revenue_cents": None,
         "unconverted_orders": p["unconverted_orders"]}
        for p in body["no_customer"]["periods"]]
    assert rows == expected
    assert len(rows) == 3 + 3 + 2 + 3  # two January cohorts, one February, three months apart
