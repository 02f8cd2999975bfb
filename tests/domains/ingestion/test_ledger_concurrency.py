"""Writers of one order racing each other on real PostgreSQL, interleaved by a row lock the test
holds: who waits, in which order, is decided by the test, never by timing."""

from __future__ import annotations

import asyncio
import json

import pytest
from db_helpers import CHAIN_STALE, ingest_shopify, order_body, shopify_delivery

from skeldir.base.db import tenant_transaction
from skeldir.domains.ingestion.inbox import IngestResult, ingest_arguments, ingest_one

pytestmark = pytest.mark.anyio

ORDER = 733001


def refund_body(order_id: int, amount: str) -> bytes:
    at = "2026-01-26T09:00:00Z"
    transaction = {"id": order_id * 100, "kind": "refund", "status": "success",
                   "currency": "USD", "amount": amount, "created_at": at}
    return json.dumps({"id": order_id * 10, "order_id": order_id, "created_at": at,
                       "transactions": [transaction]}).encode()


async def wait_until_blocked(pool, pid: int, what: str) -> None:
    """Bounded poll: the backend `pid` waits on a lock held by another session."""
    for _ in range(500):
        if await pool.fetchval("SELECT cardinality(pg_blocking_pids($1)) > 0", pid):
            return
        await asyncio.sleep(0.01)
    state = await pool.fetchrow(
        "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity WHERE pid = $1",
        pid)
    raise AssertionError(f"{what} never waited on the order's row lock: {dict(state or {})}")


async def deliver_on(conn, tenant, body: bytes, topic: str, event_id: str) -> IngestResult:
    arguments = ingest_arguments(tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                                 provider="shopify",
                                 delivery=shopify_delivery(body, topic, event_id))
    return await ingest_one(conn, arguments, CHAIN_STALE)


async def test_a_cancellation_racing_a_refund_nets_the_order_to_zero(runtime_pool, tenant_factory):
    tenant = tenant_factory()
    await ingest_shopify(runtime_pool, tenant, order_body(ORDER, total="80.00"), event_id="sale")
    cancelled = order_body(ORDER, total="80.00", updated_at="2026-01-26T10:00:00Z",
                           cancelled_at="2026-01-26T10:00:00Z")

    async with runtime_pool.acquire() as cancel_conn, runtime_pool.acquire() as refund_conn:
        async with tenant_transaction(runtime_pool, tenant.tenant_id) as holder:
            # An UPDATE's own lock: foreign key checks (KEY SHARE) of the writers still pass.
            await holder.execute("SELECT 1 FROM orders WHERE external_order_id = $1"
                                 " FOR NO KEY UPDATE", str(ORDER))
            cancel = asyncio.create_task(
                deliver_on(cancel_conn, tenant, cancelled, "orders/cancelled", "cancel"))
            await wait_until_blocked(runtime_pool, cancel_conn.get_server_pid(), "the cancellation")
            # Queued behind the cancellation: it takes the row first once the holder lets go.
            refund = asyncio.create_task(
                deliver_on(refund_conn, tenant, refund_body(ORDER, "30.00"), "refunds/create",
                           "refund"))
            await wait_until_blocked(runtime_pool, refund_conn.get_server_pid(), "the refund")
        results = await asyncio.gather(cancel, refund)
    assert [r.status for r in results] == ["accepted", "accepted"]

    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        entries = {r["kind"]: r["amount_minor"] for r in await conn.fetch(
            "SELECT kind, amount_minor FROM revenue_entries")}
    assert entries == {"sale": 8000, "refund": -3000, "cancellation": -5000}
    assert sum(entries.values()) == 0
