"""New and returning customers on real PostgreSQL: each order of a customer says whether it is
the customer's first in the tenant by order time, whatever order the orders arrive in."""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import datetime, timedelta, timezone

import pytest
from db_helpers import CHAIN_STALE, create_tenant, ingest_shopify, order_body, shopify_delivery
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ledger_concurrency import wait_until_blocked

from skeldir.base.config import Settings
from skeldir.base.db import create_pool, owner_connection, tenant_transaction
from skeldir.deployment import migrate
from skeldir.domains.ingestion.inbox import IngestResult, ingest_arguments, ingest_one
from skeldir.domains.ingestion.stitching import CUSTOMER, stitch_key

pytestmark = pytest.mark.anyio

KEY = b"customer-test-stitch-key"
ALICE = "alice@example.invalid"
BOB = "bob@example.invalid"


def body(order_id: int, created_at: str, email: str | None, **extra: object) -> bytes:
    fields = {"email": email} if email else {}
    return order_body(order_id, created_at=created_at, **fields, **extra)


async def deliver(pool, tenant, order_id: int, created_at: str, email: str | None,
                  **extra: object) -> IngestResult:
    result = await ingest_shopify(pool, tenant, body(order_id, created_at, email, **extra),
                                  event_id=f"e-{order_id}-{created_at}-{email}-{sorted(extra)}",
                                  stitch_key=KEY)
    assert result.status == "accepted", result
    return result


async def flags(pool, tenant) -> dict[str, bool | None]:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        rows = await conn.fetch("SELECT external_order_id, is_new_customer FROM orders")
    return {r["external_order_id"]: r["is_new_customer"] for r in rows}


async def customers(pool, tenant) -> dict[bytes, str]:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT c.customer_key, o.external_order_id FROM customers c"
            " JOIN orders o ON o.tenant_id = c.tenant_id AND o.order_id = c.first_order_id")
    return {r["customer_key"]: r["external_order_id"] for r in rows}


async def pending(pool, tenant) -> set[str]:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT o.external_order_id FROM pending_orders p"
            " JOIN orders o ON o.tenant_id = p.tenant_id AND o.order_id = p.order_id")
    return {r["external_order_id"] for r in rows}


async def clear_pending(pool, tenant) -> None:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        await conn.execute("DELETE FROM pending_orders")


async def test_first_order_is_new_later_ones_return_and_no_customer_is_null(runtime_pool,
                                                                           tenant_factory):
    tenant = tenant_factory()
    await deliver(runtime_pool, tenant, 1, "2026-03-01T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 2, "2026-03-05T10:00:00Z", ALICE.upper())  # same person
    await deliver(runtime_pool, tenant, 3, "2026-03-02T10:00:00Z", BOB)
    await deliver(runtime_pool, tenant, 4, "2026-03-03T10:00:00Z", None)
    assert await flags(runtime_pool, tenant) == {"1": True, "2": False, "3": True, "4": None}
    assert sorted((await customers(runtime_pool, tenant)).values()) == ["1", "3"]


async def test_an_earlier_order_arriving_later_flips_the_later_one_and_marks_it_pending(
        runtime_pool, tenant_factory):
    tenant = tenant_factory()
    await deliver(runtime_pool, tenant, 10, "2026-03-05T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 11, "2026-03-06T10:00:00Z", ALICE)
    assert await flags(runtime_pool, tenant) == {"10": True, "11": False}
    await clear_pending(runtime_pool, tenant)

    await deliver(runtime_pool, tenant, 9, "2026-03-01T10:00:00Z", ALICE)
    assert await flags(runtime_pool, tenant) == {"9": True, "10": False, "11": False}
    # The flipped order is re-attributed (its reports move); the one unchanged is not.
    assert await pending(runtime_pool, tenant) == {"9", "10"}
    assert list((await customers(runtime_pool, tenant)).values()) == ["9"]


async def test_a_first_order_moved_later_hands_new_to_the_one_now_first(runtime_pool,
                                                                         tenant_factory):
    tenant = tenant_factory()
    await deliver(runtime_pool, tenant, 20, "2026-03-01T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 21, "2026-03-03T10:00:00Z", ALICE)
    await clear_pending(runtime_pool, tenant)
    # An edit dates the first order after the other one.
    await deliver(runtime_pool, tenant, 20, "2026-03-04T10:00:00Z", ALICE,
                  updated_at="2026-03-10T10:00:00Z")
    assert await flags(runtime_pool, tenant) == {"20": False, "21": True}
    assert await pending(runtime_pool, tenant) == {"20", "21"}


async def test_an_order_whose_email_changes_leaves_its_customer_and_joins_the_other(
        runtime_pool, tenant_factory):
    tenant = tenant_factory()
    await deliver(runtime_pool, tenant, 30, "2026-03-01T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 31, "2026-03-02T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 32, "2026-02-01T10:00:00Z", BOB)
    await clear_pending(runtime_pool, tenant)
    # The first of Alice's orders was Bob's: Alice's first is now 31, and 30 is Bob's second.
    await deliver(runtime_pool, tenant, 30, "2026-03-01T10:00:00Z", BOB,
                  updated_at="2026-03-10T10:00:00Z")
    assert await flags(runtime_pool, tenant) == {"30": False, "31": True, "32": True}
    assert await pending(runtime_pool, tenant) == {"30", "31"}
    assert sorted((await customers(runtime_pool, tenant)).values()) == ["31", "32"]


async def test_orders_of_one_time_are_ordered_by_order_id(runtime_pool, tenant_factory):
    tenant = tenant_factory()
    for order_id in (40, 41, 42):
        await deliver(runtime_pool, tenant, order_id, "2026-03-01T10:00:00Z", ALICE)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        first = await conn.fetchval("SELECT external_order_id FROM orders ORDER BY order_id LIMIT 1")
    assert await flags(runtime_pool, tenant) == {
        str(n): str(n) == first for n in (40, 41, 42)}


async def test_a_cancelled_first_order_stays_the_customers_first(runtime_pool, tenant_factory):
    tenant = tenant_factory()
    await deliver(runtime_pool, tenant, 50, "2026-03-01T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 51, "2026-03-02T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 50, "2026-03-01T10:00:00Z", ALICE,
                  updated_at="2026-03-03T10:00:00Z", cancelled_at="2026-03-03T10:00:00Z")
    assert await flags(runtime_pool, tenant) == {"50": True, "51": False}


async def deliver_on(conn, tenant, order_id: int, created_at: str) -> IngestResult:
    arguments = ingest_arguments(
        tenant_id=tenant.tenant_id, source_id=tenant.source_id, provider="shopify",
        delivery=shopify_delivery(body(order_id, created_at, ALICE), "orders/create",
                                  f"race-{order_id}"),
        stitch_key=KEY)
    return await ingest_one(conn, arguments, CHAIN_STALE)


async def test_two_first_orders_of_one_customer_ingested_at_once_end_with_one_new(
        runtime_pool, tenant_factory):
    """Each order alone would be the customer's first. A holder locks the customer's row until
    both ingests queue on it, the later order first: the earlier one, settled second, must see
    the later one committed and flip it (without the lock both would say new)."""
    tenant = tenant_factory()
    customer = stitch_key(KEY, CUSTOMER, ALICE)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        # The row a first order would insert, there already so that the holder can lock it.
        await conn.execute("INSERT INTO customers (tenant_id, customer_key, first_order_id)"
                           " VALUES ($1, $2, gen_random_uuid())", tenant.tenant_id, customer)
    async with runtime_pool.acquire() as later_conn, runtime_pool.acquire() as earlier_conn:
        async with tenant_transaction(runtime_pool, tenant.tenant_id) as holder:
            await holder.execute("SELECT 1 FROM customers WHERE customer_key = $1 FOR UPDATE",
                                 customer)
            later = asyncio.create_task(
                deliver_on(later_conn, tenant, 61, "2026-03-02T10:00:00Z"))
            await wait_until_blocked(runtime_pool, later_conn.get_server_pid(), "the later order")
            earlier = asyncio.create_task(
                deliver_on(earlier_conn, tenant, 60, "2026-03-01T10:00:00Z"))
            await wait_until_blocked(runtime_pool, earlier_conn.get_server_pid(),
                                     "the earlier order")
        results = await asyncio.gather(later, earlier)
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert await flags(runtime_pool, tenant) == {"60": True, "61": False}
    assert list((await customers(runtime_pool, tenant)).values()) == ["60"]
    # The later order, settled as new and then flipped, is re-attributed.
    assert {"60", "61"} <= await pending(runtime_pool, tenant)


# --- property: any arrival order ends with exactly the earliest order new ------------------

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


@st.composite
def customer_histories(draw):
    """Orders of two customers: per order, its snapshots' order times (day offsets; an edit
    may move the time either way; equal times happen), then the arrival order of every
    snapshot."""
    orders = []
    for order_id in range(1, draw(st.integers(1, 6)) + 1):
        email = draw(st.sampled_from((ALICE, BOB)))
        times = draw(st.lists(st.integers(0, 3), min_size=1, max_size=2))
        orders.append((order_id, email, times))
    snapshots = [(order_id, email, version, day)
                 for order_id, email, times in orders for version, day in enumerate(times)]
    return orders, draw(st.permutations(snapshots))


async def history_scenario(database: Settings, orders, arrivals) -> None:
    tenant = create_tenant(database)
    pool = await create_pool(database, max_size=2)
    try:
        for order_id, email, version, day in arrivals:
            created = (BASE + timedelta(days=day)).isoformat()
            updated = (BASE + timedelta(days=10, minutes=version)).isoformat()
            result = await ingest_shopify(
                pool, tenant, body(order_id, created, email, updated_at=updated),
                event_id=f"h-{order_id}-{version}", stitch_key=KEY)
            assert result.status == "accepted", result
        async with tenant_transaction(pool, tenant.tenant_id) as conn:
            rows = await conn.fetch("SELECT external_order_id, order_id, ordered_at,"
                                    " is_new_customer FROM orders")
        stored = {r["external_order_id"]: r for r in rows}
        expected = {}
        for email in (ALICE, BOB):
            # The newest snapshot's time stands; ties go to the lower order_id.
            mine = [(BASE + timedelta(days=times[-1]), stored[str(order_id)]["order_id"],
                     str(order_id)) for order_id, e, times in orders if e == email]
            first = min(mine)[2] if mine else None
            expected.update({name: name == first for _, _, name in mine})
        assert {name: r["is_new_customer"] for name, r in stored.items()} == expected, arrivals
        firsts = await customers(pool, tenant)
        assert sorted(firsts.values()) == sorted(n for n, new in expected.items() if new)
    finally:
        await pool.close()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=customer_histories())
def test_any_arrival_order_ends_with_exactly_each_customers_earliest_order_new(database, history):
    orders, arrivals = history
    asyncio.run(history_scenario(database, orders, arrivals))


def customers_migration(database: Settings):
    # Reading the migrations puts their folder (and sql_functions) on sys.path.
    ScriptDirectory.from_config(migrate.alembic_config(database))
    path = migrate.MIGRATIONS_DIR / "versions" / "2026_12_07_0013_customers.py"
    spec = importlib.util.spec_from_file_location("customers_migration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_migration_backfills_the_flags_of_stored_orders(database, runtime_pool,
                                                                  tenant_factory):
    tenant = tenant_factory()
    await deliver(runtime_pool, tenant, 70, "2026-03-02T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 71, "2026-03-01T10:00:00Z", ALICE)
    await deliver(runtime_pool, tenant, 72, "2026-03-03T10:00:00Z", BOB)
    await deliver(runtime_pool, tenant, 73, "2026-03-03T10:00:00Z", None)
    settled = await flags(runtime_pool, tenant)
    firsts = await customers(runtime_pool, tenant)
    # As before the migration: no flag, no customer rows.
    with owner_connection(database) as conn:
        conn.execute("UPDATE orders SET is_new_customer = NULL WHERE tenant_id = %s",
                     (tenant.tenant_id,))
        conn.execute("DELETE FROM customers WHERE tenant_id = %s", (tenant.tenant_id,))
    assert set((await flags(runtime_pool, tenant)).values()) == {None}
    with owner_connection(database) as conn:
        conn.execute(customers_migration(database).BACKFILL)
    assert await flags(runtime_pool, tenant) == settled == {
        "70": False, "71": True, "72": True, "73": None}
    assert await customers(runtime_pool, tenant) == firsts
