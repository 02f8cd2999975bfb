"""Two WooCommerce stores of one tenant, both numbering orders from 1: their orders stay apart
in the ledger, and the read API names the store when an order id is ambiguous (real app, real
PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from db_helpers import CHAIN_STALE, create_tenant, ingest_shopify, order_body
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_worker_pool, owner_connection, tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.providers.woocommerce import WooCommerceProvider
from skeldir.operations import tenants


def woo_order(order_id: int, total: str) -> bytes:
    return json.dumps({"id": order_id, "status": "processing", "currency": "EUR", "total": total,
                       "date_created_gmt": "2026-02-10T09:05:00",
                       "date_modified_gmt": "2026-02-10T09:05:00",
                       "refunds": [], "meta_data": []}).encode()


def woo_refund(order_id: int, total: str, refund: str) -> bytes:
    return json.dumps({"id": order_id, "status": "refunded", "currency": "EUR", "total": total,
                       "date_created_gmt": "2026-02-10T09:05:00",
                       "date_modified_gmt": "2026-02-11T10:00:00",
                       "refunds": [{"id": 1, "total": f"-{refund}"}], "meta_data": []}).encode()


@pytest.fixture(scope="module")
def two_stores(database: Settings):
    tenant = create_tenant(database, "two woocommerce stores")
    with owner_connection(database) as conn:
        stores = [tenants.add_source(conn, secret_box(database), tenant_id=tenant.tenant_id,
                                   provider="woocommerce", secret="wc-secret", label=label,
                                   public_url="http://test").source_id
                  for label in ("shop-a.example", "shop-b.example")]

    async def load() -> None:
        pool = await create_worker_pool(database, max_size=4)
        try:
            deliveries = ((stores[0], woo_order(1, "10.00"), "order.created"),
                          (stores[1], woo_order(1, "25.00"), "order.created"),
                          (stores[1], woo_refund(1, "25.00", "5.00"), "order.updated"))
            for store, body, topic in deliveries:
                delivery = WooCommerceProvider().parse(body, {"x-wc-webhook-topic": topic})
                result = await ingest(pool, tenant_id=tenant.tenant_id, source_id=store,
                                      provider="woocommerce", delivery=delivery,
                                      chain_stale=CHAIN_STALE)
                assert result.status == "accepted"
            await ingest_shopify(pool, tenant, order_body(1))
            await start_run(pool, tenant.tenant_id, job := uuid.uuid4())
            await finish_run(pool, tenant.tenant_id, job,
                             await recompute_pending(pool, tenant.tenant_id, batch_size=10))
            async with tenant_transaction(pool, tenant.tenant_id) as conn:
                nets = await conn.fetch(
                    "SELECT sum(e.amount_minor)::bigint AS net FROM orders o"
                    " JOIN revenue_entries e USING (tenant_id, order_id)"
                    " WHERE o.provider = 'woocommerce' GROUP BY o.order_id ORDER BY 1")
            assert [r["net"] for r in nets] == [1000, 2000]
        finally:
            await pool.close()

    asyncio.run(load())
    return tenant, [str(store) for store in stores]


def explain(client, tenant, path: str, **params):
    return client.get(path, params=params, headers={"Authorization": f"Bearer {tenant.api_key}"})


def test_an_order_id_of_two_stores_is_a_conflict_that_lists_them(client, two_stores):
    tenant, stores = two_stores
    response = explain(client, tenant, "/api/reports/orders/woocommerce/1")
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert sorted(response.json()["stores"]) == sorted(stores)
    assert "?store=" in response.json()["detail"]


def test_the_store_names_one_order(client, two_stores):
    tenant, stores = two_stores
    for store, net in zip(stores, (1000, 2000), strict=True):
        response = explain(client, tenant, "/api/attribution/orders/woocommerce/1", store=store)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["store"], body["revenue_cents"], body["currency"]) == (store, net, "EUR")
        assert all(m["allocated_cents"] == net for m in body["models"].values())
    unknown = explain(client, tenant, "/api/reports/orders/woocommerce/1", store=str(uuid.uuid4()))
    assert unknown.status_code == 404


def test_paths_without_a_store_keep_working_where_unambiguous(client, two_stores):
    tenant, _ = two_stores
    response = explain(client, tenant, "/api/reports/orders/shopify/1")
    assert response.status_code == 200, response.text
    assert (response.json()["store"], response.json()["revenue_cents"]) == (None, 1050)
