"""Every entry of an order in the order's currency, on real PostgreSQL, with the shape of a
Shopify shop selling in AUD to a buyer paying in USD (the shared multi-currency fixture)."""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal

import pytest
from db_helpers import ingest_shopify, model_allocations
from provider_fixtures import shared_fixture_dir

from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.ingestion.provider import UnprocessableEvent
from skeldir.domains.reporting.refresh import refresh_tenant
from skeldir.operations import exchange_rates

pytestmark = pytest.mark.anyio

FIXTURE = "orders_create__dev_store_multicurrency_aud_shop_usd_presentment.json"


@pytest.fixture
def multicurrency_order() -> dict:
    """The fixture's AUD 60.33 order, presented to the buyer as USD 45.85."""
    order = json.loads((shared_fixture_dir("shopify") / FIXTURE).read_bytes())
    assert order["currency"] == "AUD" and order["presentment_currency"] == "USD"
    return order


def refund_body(order: dict, amount: str, currency: str, refund_id: int = 1) -> bytes:
    at = "2020-12-28T10:00:00+11:00"
    return json.dumps({"id": refund_id, "order_id": order["id"], "created_at": at,
                       "transactions": [{"id": refund_id * 10, "kind": "refund",
                                         "status": "success", "amount": amount,
                                         "currency": currency, "created_at": at}]}).encode()


async def run_chain(pool, tenant) -> None:
    await start_run(pool, tenant.tenant_id, job := uuid.uuid4())
    await finish_run(pool, tenant.tenant_id, job,
                     await recompute_pending(pool, tenant.tenant_id, batch_size=10))
    await refresh_tenant(pool, tenant.tenant_id)


async def test_a_full_refund_in_the_presentment_currency_nets_zero_everywhere(
    database, worker_pool, tenant_factory, multicurrency_order
):
    tenant = tenant_factory()
    with owner_connection(database) as conn:
        # The order's day in UTC; the tenant reports in USD.
        exchange_rates.load_rates(conn, [exchange_rates.Rate(date(2020, 12, 26), "AUD", "USD", Decimal("0.7601"))])
    order = multicurrency_order
    assert (await ingest_shopify(worker_pool, tenant, json.dumps(order).encode())).needs_chain
    await ingest_shopify(worker_pool, tenant, refund_body(order, "45.85", "USD"),
                         topic="refunds/create")
    await run_chain(worker_pool, tenant)

    async with tenant_transaction(worker_pool, tenant.tenant_id) as conn:
        entries = [tuple(r) for r in await conn.fetch(
            "SELECT kind, amount_minor, currency, sent_amount_minor, sent_currency"
            " FROM revenue_entries ORDER BY kind DESC")]
        allocations = await model_allocations(conn, str(order["id"]))
        channel_daily = await conn.fetch(
            "SELECT model, sum(net_minor)::bigint AS net, sum(revenue_minor)::bigint AS revenue"
            " FROM channel_daily GROUP BY model")
        daily = await conn.fetchrow(
            "SELECT sum(net_minor)::bigint AS net, sum(net_reporting_minor)::bigint AS reporting,"
            " sum(unconverted_entries)::bigint AS unconverted, array_agg(DISTINCT currency) AS"
            " currencies FROM daily_revenue")
    assert entries == [("sale", 6033, "AUD", 6033, "AUD"), ("refund", -6033, "AUD", -4585, "USD")]
    assert len(allocations) >= 6
    for model, allocation in allocations.items():
        assert sum(allocation["credits_minor"]) == 0, model
        assert sum(allocation["gross_credits_minor"]) == 6033, model
    assert {r["model"] for r in channel_daily} == set(allocations)
    assert all((r["net"], r["revenue"]) == (0, 6033) for r in channel_daily), channel_daily
    assert (daily["net"], daily["reporting"], daily["unconverted"]) == (0, 0, 0)
    assert daily["currencies"] == ["AUD"]


async def test_a_refund_before_its_order_is_booked_again_in_the_orders_currency(
    runtime_pool, tenant_factory, multicurrency_order
):
    tenant = tenant_factory()
    order = multicurrency_order
    await ingest_shopify(runtime_pool, tenant, refund_body(order, "10.00", "USD"),
                         topic="refunds/create")
    await ingest_shopify(runtime_pool, tenant, json.dumps(order).encode())
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        refund = await conn.fetchrow(
            "SELECT amount_minor, currency FROM revenue_entries WHERE kind = 'refund'")
    # 10.00 USD at the order's own 60.33 / 45.85.
    assert tuple(refund) == (-1316, "AUD")


async def test_an_amount_nothing_converts_is_refused_whole(
    runtime_pool, tenant_factory, multicurrency_order
):
    tenant = tenant_factory()
    order = multicurrency_order
    await ingest_shopify(runtime_pool, tenant, json.dumps(order).encode())
    refused = "in EUR cannot be booked in the order's currency AUD"
    with pytest.raises(UnprocessableEvent, match=refused):
        await ingest_shopify(runtime_pool, tenant, refund_body(order, "5.00", "EUR"),
                             topic="refunds/create")
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM revenue_entries") == 1
        assert await conn.fetchval("SELECT count(*) FROM webhook_events") == 1


async def test_the_database_refuses_an_entry_in_another_currency_than_its_order(
    runtime_pool, tenant_factory, multicurrency_order
):
    tenant = tenant_factory()
    await ingest_shopify(runtime_pool, tenant, json.dumps(multicurrency_order).encode())
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        with pytest.raises(Exception, match="revenue_entries_order_currency"):
            await conn.execute("UPDATE revenue_entries SET currency = 'USD'")
