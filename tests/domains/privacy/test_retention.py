"""Retention on real PostgreSQL with a moved clock: what is older than a tenant's periods goes,
in bounded batches; aggregates and other tenants stay."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from privacy_helpers import ALICE, BOB, report_totals, seed_customer
from shop_helpers import NOW, Shop
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.ingestion.inbox import record_dead_event
from skeldir.domains.privacy import retention
from skeldir.operations import tenants

pytestmark = pytest.mark.anyio


async def dead_letter(shop: Shop, body: dict, replayed_days_ago: int | None) -> None:
    dead_id = await record_dead_event(
        shop.pool, secret_box(shop.database), tenant_id=shop.tenant_id,
        source_id=shop.tenant.source_id, provider="shopify", topic="orders/create",
        reason="test", body=json.dumps(body).encode(), headers={})
    if replayed_days_ago is not None:
        with owner_connection(shop.database) as conn:
            conn.execute("UPDATE dead_events SET replayed_at = %s WHERE dead_event_id = %s",
                         (NOW - timedelta(days=replayed_days_ago), dead_id))


async def kept(shop: Shop) -> dict:
    return {
        "touchpoints": await shop.fetchval("SELECT count(*) FROM touchpoints"),
        "payloads": await shop.fetchval(
            "SELECT count(*) FROM webhook_events WHERE payload <> '{\"redacted\": true}'"),
        "events": await shop.fetchval("SELECT count(*) FROM webhook_events"),
        "dead_letters": await shop.fetchval("SELECT count(*) FROM dead_events"),
        "orders": await shop.fetchval("SELECT count(*) FROM orders"),
        "attributions": await shop.fetchval("SELECT count(*) FROM order_attributions"),
    }


async def test_retention_removes_what_is_older_than_each_period(database, worker_pool):
    shop, other = Shop(database, worker_pool), Shop(database, worker_pool)
    for s in (shop, other):
        await seed_customer(s, ALICE)  # three touchpoints two days old, one order
        await seed_customer(s, BOB)
        await s.run_chain()
        await dead_letter(s, {"a": 1}, replayed_days_ago=40)
        await dead_letter(s, {"a": 2}, replayed_days_ago=5)
        await dead_letter(s, {"a": 3}, replayed_days_ago=None)
    totals, before, others = await report_totals(shop), await kept(shop), await kept(other)
    assert before["touchpoints"] == 6 and before["payloads"] == 2

    # Today nothing but the dead letter replayed 40 days ago is old enough.
    removed = await retention.apply(worker_pool, shop.tenant_id, retention.Periods(), now=NOW)
    assert removed == {"touchpoints": 0, "payload_copies": 0, "dead_letters": 1,
                       "data_request_subjects": 0}

    # 91 days on, the payload copies go (the events stay), and so do the dead letter replayed
    # 96 days before and the one never replayed (a kept payload copy too); 401 days on, the
    # touchpoints.
    later = NOW + timedelta(days=91)
    removed = await retention.apply(worker_pool, shop.tenant_id, retention.Periods(), now=later)
    assert removed == {"touchpoints": 0, "payload_copies": 2, "dead_letters": 2,
                       "data_request_subjects": 0}
    much_later = NOW + timedelta(days=401)
    removed = await retention.apply(worker_pool, shop.tenant_id, retention.Periods(),
                                    now=much_later, batch_size=4)
    assert removed["touchpoints"] == 6
    after = await kept(shop)
    assert (after["touchpoints"], after["payloads"], after["dead_letters"]) == (0, 0, 0)
    assert (after["events"], after["orders"], after["attributions"]) == (
        before["events"], before["orders"], before["attributions"])
    assert await report_totals(shop) == totals
    assert await kept(other) == others


async def test_a_tenants_own_periods_apply(database, worker_pool):
    shop = Shop(database, worker_pool)
    await seed_customer(shop, ALICE)
    with owner_connection(database) as conn:
        settings = tenants.configure_tenant(conn, shop.tenant_id, retention={
            "retention_touchpoint_days": 1, "retention_payload_days": 1})
    assert settings["retention_touchpoint_days"] == 1
    assert settings["retention_dead_letter_days"] == retention.DEFAULT_DEAD_LETTER_DAYS
    rows = await worker_pool.fetch("SELECT * FROM tenants_for_retention()")
    mine = next(r for r in rows if r["tenant_id"] == shop.tenant_id)
    removed = await retention.apply(worker_pool, shop.tenant_id, retention.periods_of(mine),
                                    now=NOW)
    assert removed["touchpoints"] == 3
    with pytest.raises(tenants.AdminError):
        with owner_connection(database) as conn:
            tenants.configure_tenant(conn, shop.tenant_id,
                                     retention={"retention_payload_days": 0})
    async with tenant_transaction(worker_pool, shop.tenant_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM touchpoints") == 0
