"""Privacy requests through the HTTP doors: POST /api/privacy/erasures and Shopify's three
compliance webhooks through a source URL, each stored, carried out once, and proven by a
search of every table."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from db_helpers import SHOPIFY_SECRET
from privacy_helpers import ALICE, BOB, report_totals, rows_of, seed_customer, where_found
from shop_helpers import Shop
from skeldir.base.crypto import secret_box
from skeldir.domains.privacy import retention
from skeldir.domains.privacy.processing import process_request

pytestmark = pytest.mark.anyio


def signed(client, shop: Shop, topic: str, payload: dict, event_id: str):
    body = json.dumps(payload).encode()
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return client.post(urlsplit(shop.tenant.source_url).path, content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Event-Id": event_id, "X-Shopify-Shop-Domain": "shop.example"})


async def run_worker(shop: Shop, request_id: str):
    """What the worker's task does with the ids it is given."""
    return await process_request(shop.pool, secret_box(shop.database), shop.tenant_id,
                                 uuid.UUID(request_id))


def admin(shop: Shop) -> dict:
    return {"Authorization": f"Bearer {shop.tenant.api_key}"}


async def test_erasure_over_the_api(client, database, worker_pool):
    shop = Shop(database, worker_pool)
    await seed_customer(shop, ALICE)
    await seed_customer(shop, BOB)
    await shop.run_chain()
    key = await shop.stitch_key()
    totals, bob = await report_totals(shop), await rows_of(shop, BOB)
    assert where_found(database, shop.tenant_id, ALICE.derived(key))

    refused = client.post("/api/privacy/erasures", json={}, headers=admin(shop))
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/problem+json")
    reader = client.post("/api/privacy/erasures", json={"email": ALICE.email},
                         headers={"Authorization": f"Bearer {shop.tenant.collect_key}"})
    assert reader.status_code == 403

    # A data request first: what is held, exported per request.
    asked = client.post("/api/privacy/data-requests", json={"visitor_id": ALICE.visitor},
                        headers=admin(shop))
    assert asked.status_code == 202, asked.text
    assert await run_worker(shop, asked.json()["request_id"]) == {"orders": 1, "touchpoints": 3}
    export = client.get(f"/api/privacy/requests/{asked.json()['request_id']}/export",
                        headers=admin(shop)).json()
    assert [o["external_order_id"] for o in export["orders"]] == [str(ALICE.order_id)]
    missing = client.get(f"/api/privacy/requests/{uuid.uuid4()}/export", headers=admin(shop))
    assert missing.status_code == 404

    answer = client.post("/api/privacy/erasures", json={"email": ALICE.email}, headers=admin(shop))
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]
    # Stored hashed: the email is nowhere, even before the worker runs.
    assert where_found(database, shop.tenant_id, [ALICE.email]) == []
    counts = await run_worker(shop, request_id)
    assert counts["orders_redacted"] == 1
    assert where_found(database, shop.tenant_id, ALICE.derived(key)) == []
    assert await report_totals(shop) == totals and await rows_of(shop, BOB) == bob

    listed = client.get("/api/privacy/requests?kind=erasure", headers=admin(shop)).json()["items"]
    assert [(r["request_id"], r["kind"], r["origin"]) for r in listed] == [
        (request_id, "erasure", "api")]
    assert listed[0]["completed_at"] and listed[0]["counts"] == counts


async def test_shopify_compliance_webhooks_through_the_source_url(client, database, worker_pool):
    shop = Shop(database, worker_pool)
    await seed_customer(shop, ALICE)
    await seed_customer(shop, BOB)
    await shop.run_chain()
    key = await shop.stitch_key()
    totals, bob = await report_totals(shop), await rows_of(shop, BOB)

    # customers/data_request: recorded, then exported per request.
    asked = signed(client, shop, "customers/data_request", {
        "shop_id": 1, "shop_domain": "shop.example", "orders_requested": [ALICE.order_id],
        "customer": {"id": 191167, "email": ALICE.email, "phone": "555-625-1199"},
        "data_request": {"id": 9999}}, "evt-data-1")
    assert asked.status_code == 200, asked.text
    data_request_id = asked.json()["privacy_request_id"]
    assert (await run_worker(shop, data_request_id)) == {"orders": 1, "touchpoints": 3}
    export = client.get(f"/api/privacy/requests/{data_request_id}/export", headers=admin(shop))
    assert export.status_code == 200, export.text
    document = export.json()
    assert [o["external_order_id"] for o in document["orders"]] == [str(ALICE.order_id)]
    assert document["orders"][0]["entries"][0]["amount_minor"] == 12000
    assert {t["channel"] for t in document["touchpoints"]} >= {"paid_search", "email"}
    assert where_found(database, shop.tenant_id, [ALICE.email, "555-625-1199"]) == []

    # customers/redact, delivered twice: stored once, erased once.
    redact = {"shop_id": 1, "shop_domain": "shop.example",
              "customer": {"id": 191167, "email": ALICE.email, "phone": "555-625-1199"},
              "orders_to_redact": [ALICE.order_id]}
    first = signed(client, shop, "customers/redact", redact, "evt-redact-1")
    again = signed(client, shop, "customers/redact", redact, "evt-redact-1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == "accepted" and again.json()["status"] == "duplicate"
    assert first.json()["privacy_request_id"] == again.json()["privacy_request_id"]
    request_id = first.json()["privacy_request_id"]
    counts = await run_worker(shop, request_id)
    assert counts["orders_redacted"] == 1 and counts["touchpoints_deleted"] == 3
    assert await run_worker(shop, request_id) is None
    assert where_found(database, shop.tenant_id, ALICE.derived(key)) == []
    assert await report_totals(shop) == totals and await rows_of(shop, BOB) == bob

    # A bad signature stores nothing.
    forged = client.post(urlsplit(shop.tenant.source_url).path, content=b"{}", headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "shop/redact",
        "X-Shopify-Hmac-Sha256": "AAAA"})
    assert forged.status_code == 401

    # shop/redact: everything that came through the source.
    gone = signed(client, shop, "shop/redact", {"shop_id": 1, "shop_domain": "shop.example"},
                  "evt-shop-1")
    assert gone.status_code == 200
    shop_counts = await run_worker(shop, gone.json()["privacy_request_id"])
    assert shop_counts["orders_redacted"] == 1
    assert where_found(database, shop.tenant_id, BOB.derived(key)) == []
    assert await report_totals(shop) == totals
    kinds = [r["kind"] for r in client.get("/api/privacy/requests",
                                           headers=admin(shop)).json()["items"]]
    assert sorted(kinds) == ["data_request", "erasure", "shop_redact"]


async def test_a_data_request_export_ends_with_its_retention(client, database, worker_pool):
    shop = Shop(database, worker_pool)
    await seed_customer(shop, ALICE)
    asked = client.post("/api/privacy/data-requests", json={"email": ALICE.email},
                        headers=admin(shop)).json()["request_id"]
    await run_worker(shop, asked)
    path = f"/api/privacy/requests/{asked}/export"
    assert client.get(path, headers=admin(shop)).status_code == 200
    later = datetime.now(timezone.utc) + timedelta(days=91)
    removed = await retention.apply(worker_pool, shop.tenant_id, retention.Periods(), now=later)
    assert removed["data_request_subjects"] == 1
    gone = client.get(path, headers=admin(shop))
    assert gone.status_code == 410 and gone.headers["content-type"].startswith(
        "application/problem+json")


def test_identifiers_postgresql_cannot_store_are_refused_with_422(client, tenant_factory):
    tenant = tenant_factory()
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    for body in ({"orders": [{"provider": "shopify", "order_id": "\x00$"}]},
                 {"visitor_id": "v\x00"},
                 {"email": "\udbd0@example.invalid"}):
        for path in ("/api/privacy/erasures", "/api/privacy/data-requests"):
            answer = client.post(path, content=json.dumps(body), headers={
                **headers, "Content-Type": "application/json"})
            assert answer.status_code == 422, (path, body, answer.text)
