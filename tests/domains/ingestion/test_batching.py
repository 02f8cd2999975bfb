"""Group commit on real PostgreSQL: concurrent ingests share transactions, yet each caller gets
its own outcome, dedupe holds inside a batch, one bad event spares its neighbours, and every
event is written under its own tenant."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json

import asyncpg
import pytest

from db_helpers import (
    CHAIN_STALE,
    create_tenant,
    ingest_shopify,
    ledger,
    order_body,
    shopify_delivery,
)
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.ingestion import batching
from skeldir.domains.ingestion.batching import IngestBatcher
from skeldir.domains.ingestion.inbox import IngestArguments, ingest_arguments, ingest_many

pytestmark = pytest.mark.anyio

_order_ids = itertools.count(700_001)


@pytest.fixture
def batch_sizes(monkeypatch) -> list[int]:
    """The size of every batch sent to the database, in order."""
    sizes: list[int] = []
    real = batching.ingest_many

    async def recording(pool, events, chain_stale):
        sizes.append(len(events))
        return await real(pool, events, chain_stale)

    monkeypatch.setattr(batching, "ingest_many", recording)
    return sizes


@pytest.fixture
def retried_alone(monkeypatch) -> list[IngestArguments]:
    """Every event retried on its own after its batch failed."""
    events: list[IngestArguments] = []
    real = batching.ingest_one

    async def recording(pool, event, chain_stale):
        events.append(event)
        return await real(pool, event, chain_stale)

    monkeypatch.setattr(batching, "ingest_one", recording)
    return events


def order_event(tenant, order_id: int | None = None, **extra) -> IngestArguments:
    delivery = shopify_delivery(order_body(order_id or next(_order_ids), **extra))
    return ingest_arguments(
        tenant_id=tenant.tenant_id, source_id=tenant.source_id, provider="shopify",
        delivery=delivery)


async def ingest_together(batcher: IngestBatcher, events: list[IngestArguments]) -> list:
    """Submit every event in the same turn of the event loop; outcomes in order (or errors)."""
    return await asyncio.gather(*(batcher.ingest(e) for e in events), return_exceptions=True)


def stored_events(database: Settings, events: list[IngestArguments]) -> dict[str, list]:
    """Dedupe key -> [event id, tenant, source] of the stored rows of these events' tenants."""
    with owner_connection(database) as conn:
        rows = conn.execute(
            "SELECT dedupe_key, event_id, tenant_id, source_id FROM webhook_events"
            " WHERE tenant_id = ANY(%s) AND dedupe_key = ANY(%s)",
            (list({e.tenant_id for e in events}), [e.dedupe_key for e in events])).fetchall()
    return {key: rest for key, *rest in rows}


async def test_concurrent_ingests_of_several_tenants_each_get_their_own_result(
        database, pool, batch_sizes, retried_alone):
    tenants = [create_tenant(database, f"shop {n}") for n in range(3)]
    events = [order_event(tenants[n % 3]) for n in range(30)]
    batcher = IngestBatcher(pool, CHAIN_STALE, max_batch=8, max_in_flight=2)

    results = await ingest_together(batcher, events)
    await batcher.close()

    assert [r.status for r in results] == ["accepted"] * 30
    assert sum(batch_sizes) == 30 and max(batch_sizes) == 8 and len(batch_sizes) < 30
    assert retried_alone == []
    stored = stored_events(database, events)
    for event, result in zip(events, results, strict=True):
        assert stored[event.dedupe_key] == [result.event_id, event.tenant_id, event.source_id]
    assert len({r.event_id for r in results}) == 30


async def test_the_same_delivery_twice_in_one_batch_is_stored_once(
        database, pool, batch_sizes, retried_alone):
    tenant = create_tenant(database)
    event = order_event(tenant)
    batcher = IngestBatcher(pool, CHAIN_STALE, max_batch=8, max_in_flight=1)

    first, second = await ingest_together(batcher, [event, event])
    await batcher.close()

    assert (batch_sizes, retried_alone) == ([2], [])
    assert (first.status, second.status) == ("accepted", "duplicate")
    assert first.event_id == second.event_id
    assert (first.needs_chain, second.needs_chain) == (True, False)
    assert stored_events(database, [event])[event.dedupe_key][0] == first.event_id


def shop_day() -> list[tuple[str, str, bytes]]:
    """(event id, topic, body): edits in and out of order, a refund before its order, a
    duplicate, a cancellation."""
    def order(order_id, total, minute, **extra):
        return order_body(order_id, total=total,
                          updated_at=f"2026-01-25T12:{minute:02d}:00Z", **extra)

    def refund(refund_id, order_id, amount):
        return json.dumps({
            "id": refund_id, "order_id": order_id, "created_at": "2026-01-25T13:00:00Z",
            "transactions": [{"id": refund_id * 10, "kind": "refund", "status": "success",
                              "amount": amount, "currency": "USD",
                              "created_at": "2026-01-25T13:00:00Z"}]}).encode()

    return [
        ("o1", "orders/create", order(8001, "10.50", 40)),
        ("r2", "refunds/create", refund(92, 8002, "3.00")),
        ("o2", "orders/create", order(8002, "20.00", 40)),
        ("o1-edit", "orders/updated", order(8001, "12.00", 42)),
        ("o1-older-edit", "orders/updated", order(8001, "11.00", 41)),
        ("o1", "orders/create", order(8001, "10.50", 40)),
        ("o3", "orders/create", order(8003, "5.00", 40)),
        ("o3-cancel", "orders/cancelled",
         order(8003, "5.00", 45, cancelled_at="2026-01-25T12:45:00Z")),
        ("r1", "refunds/create", refund(91, 8001, "2.00")),
    ]


async def test_one_batch_leaves_the_ledger_as_ingesting_one_by_one_does(
        database, pool, batch_sizes, retried_alone):
    alone, together = create_tenant(database, "one by one"), create_tenant(database, "batched")
    events = shop_day()
    one_by_one = [
        (await ingest_shopify(pool, alone, body, topic=topic, event_id=event_id)).status
        for event_id, topic, body in events]
    batcher = IngestBatcher(pool, CHAIN_STALE, max_batch=64, max_in_flight=1)

    batched = await ingest_together(batcher, [
        ingest_arguments(tenant_id=together.tenant_id, source_id=together.source_id,
                         provider="shopify", delivery=shopify_delivery(body, topic, event_id))
        for event_id, topic, body in events])
    await batcher.close()

    assert (batch_sizes, retried_alone) == ([len(events)], [])
    assert [r.status for r in batched] == one_by_one
    assert one_by_one.count("duplicate") == 1
    expected = ledger(database, alone)
    assert expected["entries"] and expected["pending"]
    assert ledger(database, together) == expected


async def test_an_event_that_fails_spares_its_neighbours(
        database, pool, batch_sizes, retried_alone):
    tenant = create_tenant(database)
    good = [order_event(tenant), order_event(tenant)]
    # The ledger casts ordered_at to a timestamp: this event fails inside the batch.
    bad = order_event(tenant)
    bad = dataclasses.replace(bad, order={**bad.order, "ordered_at": "not a time"})
    batcher = IngestBatcher(pool, CHAIN_STALE, max_batch=8, max_in_flight=1)

    first, failed, last = await ingest_together(batcher, [good[0], bad, good[1]])
    await batcher.close()

    assert (batch_sizes, len(retried_alone)) == ([3], 3)
    assert isinstance(failed, asyncpg.InvalidDatetimeFormatError)
    assert (first.status, last.status) == ("accepted", "accepted")
    stored = stored_events(database, [*good, bad])
    assert set(stored) == {good[0].dedupe_key, good[1].dedupe_key}
    assert stored[good[0].dedupe_key][0] == first.event_id
    assert stored[good[1].dedupe_key][0] == last.event_id


async def test_every_event_is_written_under_its_own_tenant(database, pool):
    shop_a, shop_b = create_tenant(database, "shop a"), create_tenant(database, "shop b")
    # The same order id and dedupe key in both shops: two events, one per tenant.
    events = [order_event(shop_a, 424242), order_event(shop_b, 424242)]

    # One call, no retry: row-level security admitted each row under its own tenant's context.
    result_a, result_b = await ingest_many(pool, events, CHAIN_STALE)

    assert (result_a.status, result_b.status) == ("accepted", "accepted")
    for tenant, result in ((shop_a, result_a), (shop_b, result_b)):
        async with tenant_transaction(pool, tenant.tenant_id) as conn:
            visible = await conn.fetch("SELECT tenant_id, event_id FROM webhook_events")
            orders = await conn.fetch("SELECT tenant_id, order_id FROM orders")
        assert [tuple(r) for r in visible] == [(tenant.tenant_id, result.event_id)]
        assert [tuple(r) for r in orders] == [(tenant.tenant_id, result.order_id)]
    with owner_connection(database) as conn:
        # Runs as its caller, so the runtime role's row-level security applies inside.
        assert conn.execute(
            "SELECT prosecdef FROM pg_proc WHERE proname = 'ingest_events'").fetchone() == (False,)


async def test_a_row_under_another_tenants_context_is_refused(database, pool):
    """What the function relies on: a write is checked against the context it set."""
    shop_a, shop_b = create_tenant(database, "shop a"), create_tenant(database, "shop b")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(pool, shop_a.tenant_id) as conn:
            await conn.execute(
                "INSERT INTO webhook_events (tenant_id, source_id, provider, topic, dedupe_key,"
                " payload) VALUES ($1, $2, 'shopify', 'orders/create', 'smuggled', '{}')",
                shop_b.tenant_id, shop_b.source_id)


async def test_when_the_database_is_unreachable_every_caller_gets_the_error(
        database, pool, monkeypatch):
    tenant = create_tenant(database)
    alone: list[IngestArguments] = []

    async def unreachable(pool, events, chain_stale):
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    async def single(pool, event, chain_stale):
        alone.append(event)
        raise AssertionError("no event is retried alone when the server is the problem")

    monkeypatch.setattr(batching, "ingest_many", unreachable)
    monkeypatch.setattr(batching, "ingest_one", single)
    batcher = IngestBatcher(pool, CHAIN_STALE, max_batch=8, max_in_flight=1)

    outcomes = await ingest_together(batcher, [order_event(tenant) for _ in range(3)])
    await batcher.close()

    assert all(isinstance(o, asyncpg.ConnectionDoesNotExistError) for o in outcomes)
    assert alone == []


async def test_a_batch_waits_while_the_database_is_busy_then_takes_all_that_gathered(
        database, pool, batch_sizes):
    tenant = create_tenant(database)
    batcher = IngestBatcher(pool, CHAIN_STALE, max_batch=64, max_in_flight=1)

    first = asyncio.ensure_future(batcher.ingest(order_event(tenant)))
    await asyncio.sleep(0)  # the first batch (of one) is now at the database
    rest = await ingest_together(batcher, [order_event(tenant) for _ in range(10)])
    await first
    await batcher.close()

    assert batch_sizes == [1, 10]
    assert {r.status for r in rest} == {"accepted"}


async def test_close_sends_what_is_waiting(database, pool):
    tenant = create_tenant(database)
    batcher = IngestBatcher(pool, CHAIN_STALE, max_batch=64, max_wait=30.0)
    waiting = asyncio.ensure_future(batcher.ingest(order_event(tenant)))
    await asyncio.sleep(0)

    await batcher.close()

    assert waiting.done() and waiting.result().status == "accepted"
