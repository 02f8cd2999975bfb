"""Dead events replayed on real PostgreSQL: a body the current parser accepts is ingested once
(dedupe holds), a body it still refuses stays dead, the stored verdict is never re-checked,
and a tenant replays only its own dead events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from db_helpers import CHAIN_STALE, create_tenant, order_body
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.domains.ingestion.inbox import record_dead_event
from skeldir.domains.ingestion.provider import SignatureError, VerificationContext
from skeldir.domains.providers.stripe import StripeProvider
from skeldir.operations import dead_letters, tenants
from skeldir.operations.event_log import EventFilter

pytestmark = pytest.mark.anyio

STRIPE_SECRET = "whsec_test_replay_secret"
STRIPE_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "stripe" / (
    "payment_intent.succeeded__jpy.json"
)


async def dead_letter(database, pool, tenant, body: bytes, headers: dict, *, provider="shopify",
                      source_id=None, reason="rejected by an older parser"):
    """A dead event as the edge records one: verified, then refused by the parser of its day."""
    return await record_dead_event(
        pool, secret_box(database), tenant_id=tenant.tenant_id,
        source_id=source_id or tenant.source_id, provider=provider, topic=headers.get(
            "x-shopify-topic"), reason=reason, body=body, headers=headers)


async def replay(database, pool, tenant, *ids):
    return await dead_letters.replay_dead_events(
        pool, secret_box(database), tenant.tenant_id, list(ids), chain_stale=CHAIN_STALE)


def stored(database, tenant, sql: str, *args):
    with owner_connection(database) as conn:
        return conn.execute(sql, (tenant.tenant_id, *args)).fetchall()


async def test_a_body_the_current_parser_accepts_is_ingested_once(database, pool):
    tenant = create_tenant(database)
    headers = {"x-shopify-topic": "orders/create", "x-shopify-event-id": "ev-501",
               "x-shopify-hmac-sha256": "c2lnbmVk"}
    dead_id = await dead_letter(database, pool, tenant, order_body(501, total="42.10"), headers)

    (first,) = await replay(database, pool, tenant, dead_id)
    assert (first.outcome, first.reason, first.needs_chain) == ("replayed", None, True)
    assert stored(database, tenant,
                  "SELECT event_id, dedupe_key FROM webhook_events WHERE tenant_id = %s") == [
        (first.event_id, "event:ev-501:orders/create")]
    assert stored(database, tenant, "SELECT o.total_minor, r.amount_minor, p.order_id IS NOT NULL"
                  " FROM orders o JOIN revenue_entries r USING (tenant_id, order_id)"
                  " LEFT JOIN pending_orders p USING (tenant_id, order_id)"
                  " WHERE o.tenant_id = %s") == [(4210, 4210, True)]
    assert stored(database, tenant, "SELECT replayed_at IS NOT NULL, replayed_event_id,"
                  " replay_attempts FROM dead_events WHERE tenant_id = %s") == [
        (True, first.event_id, 1)]

    (again,) = await replay(database, pool, tenant, dead_id)
    assert (again.outcome, again.event_id, again.needs_chain) == ("replayed", first.event_id, False)
    # The same event delivered again and dead-lettered as a second body: dedupe holds.
    other_id = await dead_letter(database, pool, tenant, order_body(501, total="42.10") + b" ",
                                 headers)
    (duplicate,) = await replay(database, pool, tenant, other_id)
    assert (duplicate.outcome, duplicate.event_id) == ("duplicate", first.event_id)
    assert stored(database, tenant, "SELECT count(*) FROM webhook_events WHERE tenant_id = %s") == [
        (1,)]
    assert stored(database, tenant, "SELECT count(*) FROM revenue_entries WHERE tenant_id = %s") == [
        (1,)]


async def test_a_replay_never_checks_the_signature_timestamp_again(database, pool):
    tenant = create_tenant(database)
    with owner_connection(database) as conn:
        source = tenants.add_source(conn, secret_box(database), tenant_id=tenant.tenant_id,
                                    provider="stripe", secret=STRIPE_SECRET, public_url="http://test")
    body = STRIPE_FIXTURE.read_bytes()
    three_days_ago = int(time.time()) - 3 * 86_400
    digest = hmac.new(STRIPE_SECRET.encode(), b"%d." % three_days_ago + body, hashlib.sha256)
    headers = {"stripe-signature": f"t={three_days_ago},v1={digest.hexdigest()}",
               "content-type": "application/json"}
    with pytest.raises(SignatureError):  # what a check today would say
        StripeProvider().verify(body, headers, [STRIPE_SECRET.encode()], VerificationContext())
    dead_id = await dead_letter(database, pool, tenant, body, headers, provider="stripe",
                                source_id=source.source_id)

    (result,) = await replay(database, pool, tenant, dead_id)
    assert result.outcome == "replayed"
    assert stored(database, tenant, "SELECT provider, external_order_id, signature_verified"
                  " FROM webhook_events WHERE tenant_id = %s") == [
        ("stripe", "pi_3SkelTestJpy03Pi000003", True)]


async def test_a_body_the_parser_still_refuses_stays_dead(database, pool):
    tenant = create_tenant(database)
    broken = json.dumps({"id": 502, "created_at": "2026-01-25T12:34:56Z"}).encode()
    dead_id = await dead_letter(database, pool, tenant, broken, {"x-shopify-topic": "orders/create"})
    for attempt in (1, 2):
        (result,) = await replay(database, pool, tenant, dead_id)
        assert (result.outcome, result.event_id) == ("still_dead", None)
        assert "currency" in result.reason
        assert stored(database, tenant, "SELECT replayed_at, replay_attempts, last_replay_error,"
                      " last_replay_at IS NOT NULL FROM dead_events WHERE tenant_id = %s") == [
            (None, attempt, result.reason, True)]
    assert stored(database, tenant, "SELECT count(*) FROM webhook_events WHERE tenant_id = %s") == [
        (0,)]
    listed = await dead_letters.list_dead_events(pool, tenant.tenant_id, EventFilter(),
                                                 status="dead", limit=10)
    assert [(d.dead_event_id, d.replay_attempts) for d in listed] == [(dead_id, 2)]


async def test_bulk_replay_takes_untried_dead_events_first_and_only_the_tenants_own(database, pool):
    tenant, other = create_tenant(database, "A"), create_tenant(database, "B")
    refused = await dead_letter(database, pool, tenant, b"[]", {"x-shopify-topic": "orders/create"})
    assert [r.outcome for r in await replay(database, pool, tenant, refused)] == ["still_dead"]
    ids = [await dead_letter(database, pool, tenant, order_body(510 + n),
                             {"x-shopify-topic": "orders/create"}) for n in range(3)]
    paid = await dead_letter(database, pool, tenant, order_body(520),
                             {"x-shopify-topic": "orders/paid"})
    matching = await dead_letters.dead_event_ids(
        pool, tenant.tenant_id, EventFilter(topic="orders/create"), limit=2)
    assert matching == ids[:2]
    assert await dead_letters.dead_event_ids(pool, other.tenant_id, EventFilter(), limit=10) == []
    with pytest.raises(LookupError):
        await replay(database, pool, other, ids[0])
    results = await replay(database, pool, tenant, *matching)
    assert [r.outcome for r in results] == ["replayed", "replayed"]
    left = await dead_letters.dead_event_ids(pool, tenant.tenant_id, EventFilter(), limit=10)
    assert left == [ids[2], paid, refused], "never replayed first, a refused one last"
    replayed = await dead_letters.list_dead_events(
        pool, tenant.tenant_id, EventFilter(), status="replayed", limit=10)
    assert {d.dead_event_id for d in replayed} == set(matching)
    assert all(d.replayed_event_id for d in replayed)
