"""`ingest_events` creates a batch's new orders set-based and sends every other event through
`apply_event_to_ledger`; on real PostgreSQL, the ledger it leaves is the one that storing each
event and applying it alone, in order, leaves."""

from __future__ import annotations

import orjson
import pytest

from db_helpers import CHAIN_STALE, create_tenant, ledger
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.ingestion.inbox import IngestArguments, ingest_many

pytestmark = pytest.mark.anyio

HINTS = {"utm_source": "google", "utm_medium": "cpc", "click_ids": [["gclid", "g1"]]}


def order(external_id: str, *, currency="USD", total=1050, ordered_at="2026-01-25T10:00:00Z",
          customer: str | None = None, presentment: tuple[str, int] | None = None,
          cancelled_at: str | None = None, has_snapshot: bool = True, **keys) -> dict:
    return {
        "external_order_id": external_id, "store": "", "has_snapshot": has_snapshot,
        "currency": currency, "total_minor": total,
        "presentment_currency": presentment[0] if presentment else None,
        "presentment_total_minor": presentment[1] if presentment else None,
        "ordered_at": ordered_at, "updated_at": None, "cancelled_at": cancelled_at,
        "hints": HINTS, "visitor_id": keys.get("visitor_id"),
        "checkout_key": keys.get("checkout_key"), "cart_key": None,
        "customer_key": customer.encode().hex() if customer else None,
    }


def entry(external_id: str, amount: int, currency="USD", kind="sale") -> dict:
    return {"external_id": external_id, "kind": kind, "amount_minor": amount,
            "currency": currency, "occurred_at": "2026-01-25T10:00:00Z"}


def shop_batch() -> list[tuple[str, dict, list[dict]]]:
    """(dedupe key, order document, entries): new orders that take the set-based path (shared
    customers, a converted presentment amount, a colliding entry id, no entries) beside events
    that must not (a duplicate, an order named twice, a cancellation, an order stored before)."""
    return [
        ("d1", order("n1", customer="c1", visitor_id="v1"), [entry("s1", 1050)]),
        ("d2", order("n2", customer="c1", ordered_at="2026-01-25T09:00:00Z"),
         [entry("s2", 700)]),
        ("d3", order("n3", currency="EUR", total=2000, presentment=("USD", 2200)),
         [entry("s3", 2200, currency="USD")]),
        ("d1", order("n1", customer="c1", visitor_id="v1"), [entry("s1", 1050)]),
        ("d4", order("n4", customer="c2", checkout_key="ab12"), [entry("s4", 900)]),
        ("d4-refund", order("n4", has_snapshot=False), [entry("r4", -200, kind="refund")]),
        ("d5", order("n5", cancelled_at="2026-01-25T11:00:00Z"), [entry("s5", 500)]),
        ("d6", order("n6", total=0), []),
        # Names the entry id an order stored before the batch booked: it stays that order's.
        ("d7", order("n7", customer="c2", ordered_at="2026-01-24T10:00:00Z"),
         [entry("s-early", 300), entry("s7", 300)]),
        # Its refund was stored before the batch: the order fills that placeholder.
        ("d8", order("n8"), [entry("s8", 400)]),
    ]


def before_batch() -> list[tuple[str, dict, list[dict]]]:
    return [
        ("e0", order("n0", customer="c2", ordered_at="2026-01-25T08:00:00Z"),
         [entry("s-early", 100)]),
        ("e8", order("n8", has_snapshot=False), [entry("r8", -100, kind="refund")]),
    ]


def arguments(tenant, dedupe: str, document: dict, entries: list[dict]) -> IngestArguments:
    return IngestArguments(tenant.tenant_id, tenant.source_id, "shopify", "orders/create",
                           dedupe, {"id": dedupe}, document, entries)


async def apply_alone(pool, event: IngestArguments) -> tuple[str, bool]:
    """Store the event and apply it with apply_event_to_ledger, as a lone delivery once was."""
    async with tenant_transaction(pool, event.tenant_id) as conn:
        event_id = await conn.fetchval(
            "INSERT INTO webhook_events (tenant_id, source_id, provider, topic, dedupe_key,"
            " external_order_id, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (tenant_id, provider, dedupe_key) DO NOTHING RETURNING event_id",
            event.tenant_id, event.source_id, event.provider, event.topic, event.dedupe_key,
            event.order["external_order_id"], orjson.dumps(event.payload).decode())
        if event_id is None:
            return "duplicate", False
        row = await conn.fetchrow(
            "SELECT * FROM apply_event_to_ledger($1, $2, $3, $4::text::jsonb, $5::text::jsonb,"
            " $6, false)",
            event.tenant_id, event.provider, event_id, orjson.dumps(event.order).decode(),
            orjson.dumps(event.entries).decode(), CHAIN_STALE)
        return "accepted", row["needs_chain"]


async def test_a_batch_leaves_the_ledger_that_applying_each_event_alone_leaves(
        database, runtime_pool):
    alone, batched = create_tenant(database, "alone"), create_tenant(database, "batched")
    for tenant in (alone, batched):
        for event in before_batch():
            await apply_alone(runtime_pool, arguments(tenant, *event))

    expected = [await apply_alone(runtime_pool, arguments(alone, *event))
                for event in shop_batch()]
    results = await ingest_many(
        runtime_pool, [arguments(batched, *event) for event in shop_batch()], CHAIN_STALE)

    assert [(r.status, r.needs_chain) for r in results] == expected
    assert results[0].event_id == results[3].event_id
    assert results[3].order_id is None
    reference = ledger(database, alone)
    assert len(reference["orders"]) == 9 and len(reference["customers"]) == 2
    assert ledger(database, batched) == reference


async def test_each_result_names_its_own_order(database, runtime_pool):
    tenant = create_tenant(database, "orders")
    events = [arguments(tenant, f"k{n}", order(f"x{n}"), [entry(f"xs{n}", 100 + n)])
              for n in range(5)]
    results = await ingest_many(runtime_pool, list(reversed(events)), CHAIN_STALE)
    with owner_connection(database) as conn:
        by_id = dict(conn.execute(
            "SELECT order_id, external_order_id FROM orders WHERE tenant_id = %s",
            (tenant.tenant_id,)).fetchall())
        event_orders = dict(conn.execute(
            "SELECT event_id, external_order_id FROM webhook_events WHERE tenant_id = %s",
            (tenant.tenant_id,)).fetchall())
    named = [by_id[r.order_id] for r in results]
    assert named == [f"x{n}" for n in reversed(range(5))]
    assert [event_orders[r.event_id] for r in results] == named


async def test_an_amount_nothing_converts_still_refuses_the_batch(database, runtime_pool):
    tenant = create_tenant(database, "refused")
    refused = arguments(tenant, "bad", order("y1"), [entry("ys1", 100, currency="SEK")])
    fine = arguments(tenant, "good", order("y2"), [entry("ys2", 100)])
    with pytest.raises(Exception, match="cannot be booked"):
        await ingest_many(runtime_pool, [fine, refused], CHAIN_STALE)
    (stored,) = await ingest_many(runtime_pool, [fine], CHAIN_STALE)
    assert stored.status == "accepted"
    assert stored.order_id is not None
