"""The chain's laws on real PostgreSQL: convergence, debounce, and no work for duplicates."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from db_helpers import CHAIN_STALE, ingest_shopify, order_body

from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution import recompute
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.reporting.refresh import refresh_tenant

pytestmark = pytest.mark.anyio


async def pending_count(pool, tenant) -> int:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        return await conn.fetchval("SELECT count(*) FROM pending_orders")


async def claim(pool, tenant) -> bool:
    return await pool.fetchval("SELECT claim_chain($1, $2)", tenant.tenant_id, CHAIN_STALE)


async def run_chain(pool, tenant) -> None:
    job_id = uuid.uuid4()
    await start_run(pool, tenant.tenant_id, job_id)
    outcome = await recompute_pending(pool, tenant.tenant_id, batch_size=7)
    await finish_run(pool, tenant.tenant_id, job_id, outcome)
    await refresh_tenant(pool, tenant.tenant_id)


async def summary(pool, tenant, external_order_id: str) -> dict[str, tuple[int, int, bool]]:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT s.model, s.revenue_cents, s.allocated_cents, s.is_balanced FROM allocation_summary s"
            " JOIN orders o USING (tenant_id, order_id) WHERE o.external_order_id = $1", external_order_id)
    return {r["model"]: (r["revenue_cents"], r["allocated_cents"], r["is_balanced"]) for r in rows}


async def test_an_order_becomes_a_balanced_summary_for_every_model(worker_pool, tenant_factory):
    tenant = tenant_factory()
    result = await ingest_shopify(worker_pool, tenant, order_body(424242))
    assert result.status == "accepted" and result.needs_chain
    await run_chain(worker_pool, tenant)
    rows = await summary(worker_pool, tenant, "424242")
    assert set(rows) == {"first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
                         "position_based"}
    assert all(row == (1050, 1050, True) for row in rows.values()), rows
    assert await pending_count(worker_pool, tenant) == 0


async def test_duplicates_and_stale_updates_cause_no_work(worker_pool, tenant_factory):
    tenant = tenant_factory()
    first = await ingest_shopify(worker_pool, tenant, order_body(1), event_id="e-1")
    await run_chain(worker_pool, tenant)
    again = await ingest_shopify(worker_pool, tenant, order_body(1), event_id="e-1")
    assert (again.status, again.event_id, again.needs_chain) == ("duplicate", first.event_id, False)
    assert await pending_count(worker_pool, tenant) == 0

    newer = order_body(2, total="20.00", updated_at="2026-01-26T00:00:00Z")
    older = order_body(2, total="5.00", updated_at="2026-01-25T00:00:00Z")
    assert (await ingest_shopify(worker_pool, tenant, newer, topic="orders/updated")).needs_chain
    await run_chain(worker_pool, tenant)
    stale = await ingest_shopify(worker_pool, tenant, older, topic="orders/updated")
    assert stale.status == "accepted" and not stale.needs_chain
    assert await pending_count(worker_pool, tenant) == 0
    assert (await summary(worker_pool, tenant, "2"))["linear"] == (2000, 2000, True)


async def test_a_burst_queues_at_most_one_chain_beside_the_running_one(worker_pool, tenant_factory):
    tenant = tenant_factory()

    async def webhook(n: int) -> bool:
        result = await ingest_shopify(worker_pool, tenant, order_body(1000 + n))
        return result.needs_chain and await claim(worker_pool, tenant)

    claims = await asyncio.gather(*(webhook(n) for n in range(40)))
    assert sum(claims) == 1, "a burst must queue exactly one chain"

    # The chain starts (clearing the flag): the next burst may queue exactly one more.
    await start_run(worker_pool, tenant.tenant_id, uuid.uuid4())
    claims = await asyncio.gather(*(webhook(n) for n in range(40, 80)))
    assert sum(claims) == 1


async def test_an_order_changed_during_its_recompute_stays_pending_until_recomputed(
    runtime_pool, tenant_factory, monkeypatch
):
    tenant = tenant_factory()
    await ingest_shopify(runtime_pool, tenant, order_body(77, total="10.00", updated_at="2026-01-25T12:00:00Z"),
                         topic="orders/updated")
    original_write = recompute._write_batch
    interleaved = []

    async def write_after_a_concurrent_update(conn, tenant_id):
        if not interleaved:
            # Committed by another connection after this batch read the order.
            body = order_body(77, total="30.00", updated_at="2026-01-25T13:00:00Z")
            interleaved.append(await ingest_shopify(runtime_pool, tenant, body, topic="orders/updated"))
        await original_write(conn, tenant_id)

    monkeypatch.setattr(recompute, "_write_batch", write_after_a_concurrent_update)
    outcome = await recompute_pending(runtime_pool, tenant.tenant_id, batch_size=10)
    await refresh_tenant(runtime_pool, tenant.tenant_id)
    assert interleaved[0].status == "accepted"
    assert outcome.batches == 2, "the changed order must be read again"
    assert await pending_count(runtime_pool, tenant) == 0
    assert (await summary(runtime_pool, tenant, "77"))["first_touch"] == (3000, 3000, True)


async def test_interleaved_commits_and_recomputes_converge(worker_pool, tenant_factory):
    tenant = tenant_factory()
    expected: dict[str, int] = {}

    async def producer(start: int) -> None:
        for n in range(start, start + 30):
            cents = 100 + n
            expected[str(n)] = cents
            await ingest_shopify(worker_pool, tenant, order_body(n, total=f"{cents // 100}.{cents % 100:02d}"))

    async def recomputer() -> None:
        for _ in range(15):
            await run_chain(worker_pool, tenant)
            await asyncio.sleep(0)

    await asyncio.gather(producer(1), producer(101), recomputer(), recomputer())
    await run_chain(worker_pool, tenant)  # the chain queued by the last commit
    assert await pending_count(worker_pool, tenant) == 0
    async with tenant_transaction(worker_pool, tenant.tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT o.external_order_id, s.revenue_cents, s.allocated_cents FROM allocation_summary s"
            " JOIN orders o USING (tenant_id, order_id) WHERE s.model = 'linear'")
        dirty = await conn.fetchval("SELECT count(*) FROM report_dirty_orders")
    assert dirty == 0
    assert {r["external_order_id"]: r["revenue_cents"] for r in rows} == expected
    assert all(r["revenue_cents"] == r["allocated_cents"] for r in rows)


async def test_the_sweeper_finds_tenants_whose_pending_orders_have_no_chain(worker_pool, tenant_factory):
    tenant = tenant_factory()
    await ingest_shopify(worker_pool, tenant, order_body(31337))  # the chain was never published

    async def swept(grace: float, stale: float) -> bool:
        rows = await worker_pool.fetch("SELECT * FROM tenants_needing_recompute($1, $2) AS t(tenant_id)",
                                        timedelta(seconds=grace), timedelta(seconds=stale))
        return tenant.tenant_id in {r["tenant_id"] for r in rows}

    assert not await swept(grace=3600, stale=3600), "too recent to sweep"
    assert await swept(grace=0, stale=3600)
    assert await claim(worker_pool, tenant)
    assert not await swept(grace=0, stale=3600), "a fresh chain is queued"
    assert await swept(grace=0, stale=0), "a chain queued too long ago is presumed lost"
    await run_chain(worker_pool, tenant)
    assert not await swept(grace=0, stale=0), "nothing pending"
