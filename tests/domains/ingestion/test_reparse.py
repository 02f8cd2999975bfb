"""Re-parsing stored events: every provider's stored payload parses to the event it came from,
and on real PostgreSQL a parser fix corrects the ledger, the newest snapshot stays the one in
force, and events the current parser refuses are reported and left alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_helpers import CHAIN_STALE, create_tenant, ingest_shopify, order_body
from provider_fixtures import SHARED_PROVIDER_FIXTURES
from skeldir.base import money
from skeldir.base.config import Settings
from skeldir.base.db import create_pool, owner_connection
from skeldir.domains.ingestion.event import EntryKind
from skeldir.domains.ingestion.provider import UnprocessableEvent
from skeldir.domains.providers.registry import PROVIDERS
from skeldir.domains.providers.shopify import ShopifyProvider
from skeldir.operations import reparse
from skeldir.operations.event_log import EventFilter

OWN_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def delivery_headers(provider: str, fixture_name: str) -> dict[str, str]:
    """The headers a real delivery of the fixture carries that its parser reads."""
    kind = fixture_name.split("__")[0]
    return {
        "shopify": {"x-shopify-topic": kind.replace("_", "/", 1), "x-shopify-event-id": "9001"},
        "woocommerce": {"x-wc-webhook-topic": kind, "x-wc-webhook-delivery-id": "d41d8cd9"},
        "standard": {"webhook-id": "msg_2mV3aQ1wZ"},
    }.get(provider, {})


def fixtures() -> list[tuple[str, Path]]:
    found = []
    for root in (OWN_FIXTURES, SHARED_PROVIDER_FIXTURES):
        for provider in PROVIDERS:
            found += [(provider, path) for path in sorted((root / provider).glob("*.json"))]
    return found


@pytest.mark.parametrize(
    ("provider", "path"), fixtures(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_a_stored_event_parses_to_the_event_it_was_stored_from(provider: str, path: Path):
    try:
        delivery = PROVIDERS[provider].parse(path.read_bytes(), delivery_headers(provider, path.name))
    except UnprocessableEvent:
        pytest.skip("a fixture of a delivery that is never stored")
    stored_payload = orjson.loads(orjson.dumps(delivery.redacted_payload))
    again = reparse.parse_stored(provider, delivery.topic, delivery.dedupe_key, stored_payload)
    assert again.event == delivery.event
    assert again.topic == delivery.topic


# --- on real PostgreSQL -----------------------------------------------------------------------

REAL_PARSE = ShopifyProvider.parse


def parser_that_scales_amounts(numerator: int, denominator: int):
    """A Shopify parser whose amounts are off by a factor (a bug, or the fix of one)."""

    def scaled(minor: int) -> int:
        return minor * numerator // denominator

    def parse(self, body, headers):
        delivery = REAL_PARSE(self, body, headers)
        event = delivery.event
        entries = tuple(dataclasses.replace(e, amount_minor=scaled(e.amount_minor))
                        for e in event.entries)
        event = dataclasses.replace(event, total_minor=scaled(event.total_minor), entries=entries)
        return dataclasses.replace(delivery, event=event)

    return parse


def refund_body(refund_id: int, order_id: int, amount: str) -> bytes:
    at = "2026-01-26T09:00:00Z"
    return json.dumps({"id": refund_id, "order_id": order_id, "created_at": at, "transactions": [
        {"id": refund_id * 10, "kind": "refund", "status": "success", "amount": amount,
         "currency": "USD", "created_at": at}]}).encode()


def ledger(database, tenant) -> dict[str, tuple]:
    """Per order: total, its entries' amounts by kind, and whether it is pending."""
    with owner_connection(database) as conn:
        rows = conn.execute(
            "SELECT o.external_order_id, o.total_minor,"
            " (SELECT array_agg(r.kind || ':' || r.amount_minor ORDER BY r.kind, r.amount_minor)"
            "  FROM revenue_entries r WHERE r.tenant_id = o.tenant_id AND r.order_id = o.order_id),"
            " EXISTS (SELECT 1 FROM pending_orders p WHERE p.tenant_id = o.tenant_id"
            "         AND p.order_id = o.order_id)"
            " FROM orders o WHERE o.tenant_id = %s", (tenant.tenant_id,)).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def settle(database, tenant) -> None:
    """As if the recompute had run: nothing pending."""
    with owner_connection(database) as conn:
        conn.execute("DELETE FROM pending_orders WHERE tenant_id = %s", (tenant.tenant_id,))


async def run_reparse(pool, tenant, filters=EventFilter()):
    return await reparse.reparse_events(pool, tenant.tenant_id, filters, chain_stale=CHAIN_STALE)


@pytest.mark.anyio
async def test_a_parser_fix_corrects_the_ledger(database, pool, monkeypatch):
    tenant = create_tenant(database)
    monkeypatch.setattr(ShopifyProvider, "parse", parser_that_scales_amounts(1, 2))
    await ingest_shopify(pool, tenant, order_body(601, total="42.10"), event_id="o601")
    await ingest_shopify(pool, tenant, refund_body(71, 601, "10.00"), topic="refunds/create")
    await ingest_shopify(pool, tenant, order_body(602, total="10.50"), event_id="o602")
    settle(database, tenant)
    assert ledger(database, tenant) == {"601": (2105, ["refund:-500", "sale:2105"], False),
                                        "602": (525, ["sale:525"], False)}

    monkeypatch.setattr(ShopifyProvider, "parse", REAL_PARSE)
    monkeypatch.setattr(reparse, "BATCH_SIZE", 2)
    batches = []
    summary = await reparse.reparse_events(pool, tenant.tenant_id, EventFilter(),
                                           chain_stale=CHAIN_STALE, on_batch=batches.append)
    assert batches == [2, 1]
    assert (summary.reparsed, len(summary.changed_orders), summary.failed) == (3, 2, [])
    assert summary.needs_chain
    assert ledger(database, tenant) == {"601": (4210, ["refund:-1000", "sale:4210"], True),
                                        "602": (1050, ["sale:1050"], True)}
    with owner_connection(database) as conn:
        assert conn.execute("SELECT count(*), count(reparsed_at), count(DISTINCT dedupe_key)"
                            " FROM webhook_events WHERE tenant_id = %s",
                            (tenant.tenant_id,)).fetchone() == (3, 3, 3)

    settle(database, tenant)
    again = await run_reparse(pool, tenant)
    assert (again.reparsed, again.changed_orders, again.needs_chain) == (3, set(), False)
    assert all(not pending for *_, pending in ledger(database, tenant).values())


@pytest.mark.anyio
async def test_the_newest_snapshot_stays_in_force(database, pool, monkeypatch):
    tenant = create_tenant(database)
    await ingest_shopify(pool, tenant, order_body(610, total="10.00",
                         updated_at="2026-01-25T12:00:00Z"), event_id="c610")
    await ingest_shopify(pool, tenant, order_body(610, total="12.00",
                         updated_at="2026-01-25T13:00:00Z"), topic="orders/updated",
                         event_id="u610")
    settle(database, tenant)
    assert (await run_reparse(pool, tenant)).changed_orders == set()

    monkeypatch.setattr(ShopifyProvider, "parse", parser_that_scales_amounts(2, 1))
    older = await run_reparse(pool, tenant, EventFilter(topic="orders/create"))
    assert (older.reparsed, older.changed_orders) == (1, set())
    assert ledger(database, tenant) == {"610": (1200, ["sale:1200"], False)}

    newest = await run_reparse(pool, tenant)
    assert len(newest.changed_orders) == 1
    assert ledger(database, tenant) == {"610": (2400, ["sale:2400"], True)}


@pytest.mark.anyio
async def test_events_the_current_parser_refuses_are_reported_and_left_alone(
    database, pool, monkeypatch
):
    tenant = create_tenant(database)
    await ingest_shopify(pool, tenant, order_body(620), event_id="c620")
    await ingest_shopify(pool, tenant, order_body(621), topic="orders/paid", event_id="p621")

    def stricter(self, body, headers):
        if headers.get("x-shopify-topic") == "orders/paid":
            raise UnprocessableEvent("order.paid_at is missing")
        return REAL_PARSE(self, body, headers)

    monkeypatch.setattr(ShopifyProvider, "parse", stricter)
    summary = await run_reparse(pool, tenant)
    assert summary.reparsed == 1 and summary.failed_count == 1
    with owner_connection(database) as conn:
        refused = conn.execute("SELECT event_id, reparsed_at FROM webhook_events"
                               " WHERE tenant_id = %s AND topic = 'orders/paid'",
                               (tenant.tenant_id,)).fetchone()
    assert summary.failed == [reparse.ReparseFailure(refused[0], "order.paid_at is missing")]
    assert refused[1] is None
    assert EntryKind.SALE.value in ledger(database, tenant)["621"][1][0]


# --- a parser fix applied by re-parsing equals ingesting with the fixed parser ----------------

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@st.composite
def shop_events(draw) -> list[tuple[str, str, bytes]]:
    """(event id, topic, body) of random orders: edits, refunds and cancellations."""
    events = []
    for order_id in range(880_000, 880_000 + draw(st.integers(1, 4))):
        currency = draw(st.sampled_from(["USD", "JPY", "KWD"]))
        ordered_at = BASE + timedelta(days=draw(st.integers(0, 2)))
        totals = draw(st.lists(st.integers(1, 90_000), min_size=1, max_size=3))
        snapshot = {"id": order_id, "currency": currency, "created_at": ordered_at.isoformat()}
        for version, total in enumerate(totals):
            body = {**snapshot, "total_price": money.format_minor(total, currency),
                    "updated_at": (ordered_at + timedelta(minutes=version)).isoformat()}
            topic = "orders/create" if version == 0 else "orders/updated"
            events.append((f"o{order_id}v{version}", topic, json.dumps(body).encode()))
        for index, amount in enumerate(draw(st.lists(st.integers(1, 9_000), max_size=2))):
            at = (ordered_at + timedelta(hours=index + 1)).isoformat()
            refund = {"id": order_id * 10 + index, "order_id": order_id, "created_at": at,
                      "transactions": [{"id": order_id * 100 + index, "kind": "refund",
                                        "status": "success", "currency": currency, "created_at": at,
                                        "amount": money.format_minor(amount, currency)}]}
            events.append((f"r{order_id}-{index}", "refunds/create", json.dumps(refund).encode()))
        if draw(st.booleans()):
            at = (ordered_at + timedelta(minutes=10)).isoformat()
            body = {**snapshot, "total_price": money.format_minor(totals[-1], currency),
                    "updated_at": at, "cancelled_at": at}
            events.append((f"c{order_id}", "orders/cancelled", json.dumps(body).encode()))
    return events


def ledger_rows(database, tenant) -> set[tuple]:
    with owner_connection(database) as conn:
        orders = conn.execute(
            "SELECT external_order_id, has_snapshot, currency, total_minor, ordered_at,"
            " source_updated_at, cancelled_at FROM orders WHERE tenant_id = %s",
            (tenant.tenant_id,)).fetchall()
        entries = conn.execute(
            "SELECT o.external_order_id, r.external_entry_id, r.kind, r.amount_minor, r.currency"
            " FROM revenue_entries r JOIN orders o USING (tenant_id, order_id)"
            " WHERE r.tenant_id = %s", (tenant.tenant_id,)).fetchall()
    return set(orders) | set(entries)


async def ingest_all(database, tenant, events) -> None:
    pool = await create_pool(database, max_size=2)
    try:
        for event_id, topic, body in events:
            await ingest_shopify(pool, tenant, body, topic=topic, event_id=event_id)
    finally:
        await pool.close()


async def reparse_all(database, tenant) -> None:
    pool = await create_pool(database, max_size=2)
    try:
        await run_reparse(pool, tenant)
    finally:
        await pool.close()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=shop_events(), seed=st.integers(0, 2**32))
def test_reparsing_after_a_fix_equals_ingesting_with_the_fix(database: Settings, events, seed):
    shuffler = random.Random(seed)
    events = events + shuffler.sample(events, k=len(events) // 3)  # duplicate deliveries
    shuffler.shuffle(events)
    fixed, repaired = create_tenant(database, "fixed"), create_tenant(database, "repaired")
    asyncio.run(ingest_all(database, fixed, events))
    with patch.object(ShopifyProvider, "parse", parser_that_scales_amounts(1, 3)):
        asyncio.run(ingest_all(database, repaired, events))
    broken = ledger_rows(database, repaired)
    asyncio.run(reparse_all(database, repaired))
    assert ledger_rows(database, repaired) == ledger_rows(database, fixed)
    assert broken != ledger_rows(database, fixed), "a bug that changes nothing proves nothing"
