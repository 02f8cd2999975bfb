"""The ledger's SQL functions on real PostgreSQL: what they leave of the caller's context."""

from __future__ import annotations

import pytest
from db_helpers import CHAIN_STALE, order_body, shopify_delivery

from skeldir.base.db import tenant_transaction
from skeldir.domains.ingestion.inbox import (
    entry_documents,
    ingest_arguments,
    ingest_one,
    order_document,
)

pytestmark = pytest.mark.anyio


async def current_tenant(conn) -> str:
    return await conn.fetchval("SELECT current_setting('app.tenant_id', true)")


async def test_ledger_functions_leave_the_callers_tenant_in_place(runtime_pool, tenant_factory):
    caller, other = tenant_factory("caller"), tenant_factory("other")
    delivery = shopify_delivery(order_body(515151), event_id="context-1")
    arguments = ingest_arguments(tenant_id=other.tenant_id, source_id=other.source_id,
                                 provider="shopify", delivery=delivery)
    async with tenant_transaction(runtime_pool, caller.tenant_id) as conn:
        ingested = await ingest_one(conn, arguments, CHAIN_STALE)
        assert ingested.status == "accepted"
        assert await current_tenant(conn) == str(caller.tenant_id)

        await conn.fetchrow(
            "SELECT * FROM apply_event_to_ledger($1, 'shopify', $2, $3, $4, $5, true)",
            other.tenant_id, ingested.event_id, order_document(delivery.event),
            entry_documents(delivery.event), CHAIN_STALE)
        assert await current_tenant(conn) == str(caller.tenant_id)

        await conn.fetchval("SELECT claim_chain($1, $2)", other.tenant_id, CHAIN_STALE)
        assert await current_tenant(conn) == str(caller.tenant_id)
        # The caller still sees its own rows only: none of the other tenant's order.
        assert await conn.fetchval("SELECT count(*) FROM orders") == 0

    async with tenant_transaction(runtime_pool, other.tenant_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders") == 1


async def test_a_transaction_without_a_tenant_has_none_after_a_ledger_call(
    runtime_pool, tenant_factory
):
    tenant = tenant_factory()
    async with runtime_pool.acquire() as conn, conn.transaction():
        assert await conn.fetchval("SELECT claim_chain($1, $2)", tenant.tenant_id, CHAIN_STALE)
        assert (await current_tenant(conn) or "") == ""
        assert await conn.fetchval("SELECT count(*) FROM chain_state") == 0
