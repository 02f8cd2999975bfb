"""Erasure of one customer on real PostgreSQL: every derived key gone from every table, the
money and every report total unchanged, other customers untouched, done once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest

from db_helpers import CHAIN_STALE
from privacy_helpers import ALICE, BOB, report_totals, rows_of, seed_customer, where_found
from shop_helpers import NOW, Shop
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_pool, tenant_transaction
from skeldir.domains.ingestion.inbox import record_dead_event
from skeldir.domains.privacy import requests
from skeldir.domains.ingestion.stitching import CUSTOMER, stitch_key
from skeldir.domains.privacy.erasure import erase
from skeldir.domains.privacy.processing import process_request
from skeldir.domains.privacy.subjects import OrderRef, subject_of
from skeldir.operations.event_log import EventFilter
from skeldir.operations.reparse import reparse_events

pytestmark = pytest.mark.anyio


async def erase_by(shop: Shop, **identifiers) -> tuple:
    box = secret_box(shop.database)
    subject = subject_of(await shop.stitch_key(), **identifiers)
    async with tenant_transaction(shop.pool, shop.tenant_id) as conn:
        request_id, new = await requests.record(conn, shop.tenant_id, kind="erasure",
                                                origin="api", subject=subject)
    assert new
    return request_id, await process_request(shop.pool, box, shop.tenant_id, request_id)


async def seeded_shop(database, worker_pool) -> Shop:
    shop = Shop(database, worker_pool)
    await seed_customer(shop, ALICE, second_order=700011)
    await seed_customer(shop, BOB)
    # A delivery that could not be parsed, naming Alice, and one naming Bob.
    for customer in (ALICE, BOB):
        await record_dead_event(
            worker_pool, secret_box(database), tenant_id=shop.tenant_id,
            source_id=shop.tenant.source_id, provider="shopify", topic="orders/create",
            reason="test", body=json.dumps({"id": "x", "email": customer.email.upper()}).encode(),
            headers={})
    await shop.run_chain()
    return shop


async def test_erasure_by_email_removes_every_derived_key_and_keeps_every_total(
        database, worker_pool):
    shop = await seeded_shop(database, worker_pool)
    key = await shop.stitch_key()
    assert where_found(database, shop.tenant_id, ALICE.derived(key)), "nothing of Alice is kept?"
    totals, bob = await report_totals(shop), await rows_of(shop, BOB)
    credits_before = await shop.fetch(
        "SELECT order_id, channels, credits FROM order_attributions ORDER BY 1")

    request_id, counts = await erase_by(shop, customer_refs=[" Alice@Example.com "])

    assert counts["orders_redacted"] == 2 and counts["touchpoints_deleted"] == 3
    assert counts["dead_letters_deleted"] == 1 and counts["payload_copies_redacted"] == 2
    assert where_found(database, shop.tenant_id, ALICE.derived(key)) == []
    assert await report_totals(shop) == totals
    assert await rows_of(shop, BOB) == bob
    # A recompute of everything leaves the erased orders' credits as they were attributed.
    await shop.fetch("SELECT mark_orders_pending($1, array(SELECT order_id FROM orders))",
                     shop.tenant_id)
    await shop.run_chain()
    assert await shop.fetch(
        "SELECT order_id, channels, credits FROM order_attributions ORDER BY 1") == credits_before
    assert await report_totals(shop) == totals
    assert await shop.fetchval("SELECT count(*) FROM pending_orders") == 0

    # Done once: the request is completed, its subject emptied; running it again does nothing.
    async with tenant_transaction(shop.pool, shop.tenant_id) as conn:
        done = await requests.get(conn, shop.tenant_id, request_id)
    assert done.completed_at is not None and done.subject.empty and done.counts == counts
    assert await process_request(shop.pool, secret_box(database), shop.tenant_id,
                                 request_id) is None


async def test_a_later_delivery_of_an_erased_order_brings_no_key_back(database, worker_pool):
    shop = await seeded_shop(database, worker_pool)
    key = await shop.stitch_key()
    await erase_by(shop, customer_refs=[ALICE.email])
    await shop.order(ALICE.order_id, "120.00", NOW, topic="orders/updated",
                     visitor=ALICE.visitor, email=ALICE.email, checkout_token=ALICE.checkout_token,
                     updated_at=NOW.isoformat(), landing_site="/?utm_source=google&gclid=G-9")
    # Neither its links nor its new payload copy are kept.
    assert where_found(database, shop.tenant_id, [*ALICE.derived(key), "G-9"]) == []


async def test_erasure_by_visitor_id_and_by_order(database, worker_pool):
    shop = await seeded_shop(database, worker_pool)
    key = await shop.stitch_key()
    totals, alice = await report_totals(shop), await rows_of(shop, ALICE)
    _, by_visitor = await erase_by(shop, visitor_ids=[BOB.visitor])
    assert by_visitor["orders_redacted"] == 1
    assert where_found(database, shop.tenant_id, BOB.derived(key)) == []
    assert await rows_of(shop, ALICE) == alice and await report_totals(shop) == totals

    _, by_order = await erase_by(shop, orders=[OrderRef("shopify", str(ALICE.order_id))])
    # The order names Alice's visitor, whose journey and other order go with it.
    assert by_order["orders_redacted"] == 2
    assert where_found(database, shop.tenant_id, ALICE.derived(key)) == []
    assert await report_totals(shop) == totals


async def test_a_reparse_skips_erased_payload_copies(database, worker_pool):
    shop = await seeded_shop(database, worker_pool)
    await erase_by(shop, customer_refs=[ALICE.email])
    summary = await reparse_events(worker_pool, shop.tenant_id, EventFilter(),
                                   chain_stale=CHAIN_STALE)
    # Bob's order is parsed again; Alice's erased copies are not read, so none fails.
    assert summary.reparsed == 1 and summary.failed_count == 0


async def test_two_workers_given_one_request_erase_it_once(database, worker_pool):
    shop = await seeded_shop(database, worker_pool)
    subject = subject_of(await shop.stitch_key(), customer_refs=[ALICE.email])
    async with tenant_transaction(shop.pool, shop.tenant_id) as conn:
        request_id, _ = await requests.record(conn, shop.tenant_id, kind="erasure",
                                              origin="api", subject=subject)
    box = secret_box(database)
    # The request row is locked for a run: the second waits, then finds it completed.
    results = await asyncio.gather(
        process_request(shop.pool, box, shop.tenant_id, request_id),
        process_request(shop.pool, box, shop.tenant_id, request_id))
    assert sorted(r is None for r in results) == [False, True]
    done = next(r for r in results if r)
    assert done["orders_redacted"] == 2


async def test_erasure_follows_a_person_across_devices(database, worker_pool):
    """Device 1 identifies by email and orders with cart X; device 2 shares cart X and orders
    with checkout token T; device 3 carries T and orders on its own: one person, three rounds."""
    shop = Shop(database, worker_pool)
    day = NOW - timedelta(days=1)
    url = "https://shop.example/?utm_source=google&utm_medium=cpc"
    await shop.visit("dev-1", url, day, customer_ref="carol@example.com")
    await shop.order(800001, "10.00", day + timedelta(hours=1), visitor="dev-1",
                     email="carol@example.com", cart_token="cart-x")
    await shop.visit("dev-2", url, day + timedelta(hours=2), cart_token="cart-x")
    await shop.order(800002, "20.00", day + timedelta(hours=3), visitor="dev-2",
                     checkout_token="chk-t")
    await shop.visit("dev-3", url, day + timedelta(hours=4), checkout_token="chk-t")
    await shop.visit("dev-3", "https://shop.example/?utm_source=news&utm_medium=email",
                     day + timedelta(hours=5))
    await shop.order(800003, "30.00", day + timedelta(hours=6), visitor="dev-3")
    await seed_customer(shop, BOB)
    await shop.run_chain()
    totals, bob = await report_totals(shop), await rows_of(shop, BOB)
    credits = await shop.fetch("SELECT order_id, channels, credits FROM order_attributions"
                               " ORDER BY 1")

    _, counts = await erase_by(shop, customer_refs=["carol@example.com"])

    assert counts["orders_redacted"] == 3 and counts["visitors"] == 3
    assert where_found(database, shop.tenant_id, ["dev-1", "dev-2", "dev-3"]) == []
    await shop.fetch("SELECT mark_orders_pending($1, array(SELECT order_id FROM orders))",
                     shop.tenant_id)
    await shop.run_chain()
    assert await shop.fetch("SELECT order_id, channels, credits FROM order_attributions"
                            " ORDER BY 1") == credits
    assert await report_totals(shop) == totals and await rows_of(shop, BOB) == bob


async def test_a_table_added_later_with_a_key_column_is_erased_too(database, worker_pool):
    """A table found in the catalog, not named in the code: created inside a transaction that is
    rolled back (as the owner, which may create it), so the session's database stays as it is."""
    shop = await seeded_shop(database, worker_pool)
    tenant_key = await shop.stitch_key()
    subject = subject_of(tenant_key, customer_refs=[ALICE.email])
    alice, bob = (stitch_key(tenant_key, CUSTOMER, c.email) for c in (ALICE, BOB))
    # The owner's connection, with the codecs of every pool connection.
    owner_pool = await create_pool(replace(database, database_url=database.owner_database_url),
                                   max_size=1)
    conn = await owner_pool.acquire()
    try:
        async with conn.transaction():
            await conn.execute(
                "CREATE TABLE later_customers (tenant_id uuid NOT NULL,"
                " customer_key bytea NOT NULL, first_order_at timestamptz,"
                " PRIMARY KEY (tenant_id, customer_key));"
                "CREATE TABLE later_sessions (tenant_id uuid NOT NULL, session_id text NOT NULL,"
                " visitor_id text, PRIMARY KEY (tenant_id, session_id))")
            await conn.executemany("INSERT INTO later_customers VALUES ($1, $2, now())",
                                   [(shop.tenant_id, alice), (shop.tenant_id, bob)])
            await conn.executemany("INSERT INTO later_sessions VALUES ($1, $2, $3)",
                                   [(shop.tenant_id, "s1", ALICE.visitor),
                                    (shop.tenant_id, "s2", BOB.visitor)])
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(shop.tenant_id))
            counts = await erase(conn, shop.tenant_id, subject, tenant_key=tenant_key,
                                 box=secret_box(database))
            # Alice's row in later_customers and in the customers table, her session's visitor.
            assert counts.other_rows_erased == 3
            assert await conn.fetch("SELECT customer_key FROM later_customers") == [(bob,)]
            assert [tuple(r) for r in await conn.fetch(
                "SELECT session_id, visitor_id FROM later_sessions ORDER BY 1")] == [
                ("s1", None), ("s2", BOB.visitor)]
            raise asyncpg.exceptions.RaiseError("roll back")
    except asyncpg.exceptions.RaiseError:
        pass
    finally:
        await owner_pool.release(conn)
        await owner_pool.close()
