"""Shopify's three compliance webhooks, signed, through a real source URL of a running system
(API, broker, worker): each answers 200 once stored, the worker carries it out once, the
customer's derived keys are gone from every table and the report totals are unchanged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from e2e_system import RunningSystem
from privacy_helpers import Customer, where_found
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.domains.ingestion.stitching import CUSTOMER, stitch_key

pytestmark = pytest.mark.e2e

SECRET = "shpss_e2e_privacy"
TODAY = datetime.now(timezone.utc).replace(microsecond=0)
ALICE = Customer("alice.e2e@example.com", "v-e2e-alice", "chk-e2e-alice", "cart-e2e-alice", 990001)
BOB = Customer("bob.e2e@example.com", "v-e2e-bob", "chk-e2e-bob", "cart-e2e-bob", 990002)


def poll(what: str, check, timeout: float = 30.0, diagnose=lambda: None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s: {diagnose()!r}")


def webhook(url: str, topic: str, document: dict, event_id: str) -> httpx.Response:
    body = json.dumps(document).encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return httpx.post(url, content=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": topic,
        "X-Shopify-Event-Id": event_id, "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": "e2e.myshopify.com"})


@pytest.fixture(scope="module")
def shop(system: RunningSystem) -> dict:
    tenant = system.cli("tenant", "create", "privacy shop", "--json")
    tenant["url"] = system.cli("source", "add", "--tenant", tenant["tenant_id"], "--provider",
                               "shopify", "--secret", SECRET, "--json")["url"]
    tenant["source_id"] = system.cli("source", "list", "--tenant", tenant["tenant_id"],
                                     "--json")["items"][0]["source_id"]
    for customer in (ALICE, BOB):
        visit_at = (TODAY - timedelta(hours=3)).isoformat()
        touchpoints = [
            {"id": f"{customer.visitor}-1", "visitor_id": customer.visitor, "occurred_at": visit_at,
             "url": "https://e2e.example/?utm_source=google&utm_medium=cpc&gclid=G-E2E"},
            {"id": f"{customer.visitor}-2", "visitor_id": customer.visitor, "kind": "identify",
             "occurred_at": visit_at, "customer_ref": customer.email,
             "checkout_token": customer.checkout_token}]
        answer = httpx.post(f"{system.api_url}/api/touchpoints", timeout=10,
                            json={"touchpoints": touchpoints},
                            headers={"Authorization": f"Bearer {tenant['collect_key']}"})
        assert answer.status_code == 200 and answer.json()["accepted"] == 2, answer.text
        order = {"id": customer.order_id, "currency": "USD", "total_price": "50.00",
                 "created_at": (TODAY - timedelta(hours=1)).isoformat(), "email": customer.email,
                 "checkout_token": customer.checkout_token,
                 "note_attributes": [{"name": "skeldir_visitor_id", "value": customer.visitor}]}
        sent = webhook(tenant["url"], "orders/create", order, f"order-{customer.order_id}")
        assert sent.status_code == 200 and sent.json()["status"] == "accepted", sent.text
    return tenant


def admin_get(system: RunningSystem, shop: dict, path: str) -> dict:
    response = httpx.get(f"{system.api_url}{path}", timeout=10,
                         headers={"Authorization": f"Bearer {shop['api_key']}"})
    assert response.status_code == 200, response.text
    return response.json()


def channel_totals(system: RunningSystem, shop: dict) -> list | None:
    day = TODAY.date().isoformat()
    totals = admin_get(system, shop,
                       f"/api/reports/channels/summary?model=linear&from={day}&to={day}")
    return totals


def attributed(system, shop) -> list | None:
    freshness = admin_get(system, shop, "/api/status")["freshness"]
    if not freshness["reports_fresh"]:
        return None
    totals = channel_totals(system, shop)
    return totals if totals.get("items") else None


def completed(system, shop, request_id: str) -> dict | None:
    items = admin_get(system, shop, "/api/privacy/requests")["items"]
    found = [r for r in items if r["request_id"] == request_id]
    return found[0] if found and found[0]["completed_at"] else None


def derived(system: RunningSystem, shop: dict, customer: Customer) -> list:
    # The system's own key: its data dir's key file, or SKELDIR_SECRET_KEY where the system
    # runs on the machine's services (.ci/run).
    settings = Settings(data_dir=system.data_dir,
                        owner_database_url=system.ready["owner_database_url"],
                        secret_key=system.env.get("SKELDIR_SECRET_KEY"))
    with owner_connection(settings) as conn:
        ciphertext = conn.execute("SELECT stitch_key_ciphertext FROM tenants WHERE tenant_id = %s",
                                  (shop["tenant_id"],)).fetchone()[0]
    key = secret_box(settings).decrypt(bytes(ciphertext),
                                       context=uuid.UUID(shop["tenant_id"]).bytes)
    return settings, [stitch_key(key, CUSTOMER, customer.email), customer.visitor,
                      *customer.derived(key)[1:3]]


def test_the_three_compliance_webhooks_through_the_source_url(system: RunningSystem, shop: dict):
    before = poll("both orders attributed", lambda: attributed(system, shop),
                  diagnose=lambda: (admin_get(system, shop, "/api/status"),
                                    channel_totals(system, shop)))
    settings, alice_keys = derived(system, shop, ALICE)
    assert where_found(settings, shop["tenant_id"], alice_keys)

    # customers/data_request: stored, carried out, exported per request.
    asked = webhook(shop["url"], "customers/data_request", {
        "shop_domain": "e2e.myshopify.com", "orders_requested": [ALICE.order_id],
        "customer": {"id": 1, "email": ALICE.email}, "data_request": {"id": 1}}, "e2e-data-1")
    assert asked.status_code == 200, asked.text
    data_id = asked.json()["privacy_request_id"]
    assert poll("data request completed", lambda: completed(system, shop, data_id))["counts"] == {
        "orders": 1, "touchpoints": 2}
    export = admin_get(system, shop, f"/api/privacy/requests/{data_id}/export")
    assert [o["external_order_id"] for o in export["orders"]] == [str(ALICE.order_id)]
    assert "paid_search" in export["orders"][0]["channels"]

    # customers/redact, delivered twice: stored once, erased once.
    redact = {"shop_domain": "e2e.myshopify.com", "customer": {"id": 1, "email": ALICE.email},
              "orders_to_redact": [ALICE.order_id]}
    first = webhook(shop["url"], "customers/redact", redact, "e2e-redact-1")
    second = webhook(shop["url"], "customers/redact", redact, "e2e-redact-1")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["status"], second.json()["status"]) == ("accepted", "duplicate")
    redact_id = first.json()["privacy_request_id"]
    done = poll("erasure completed", lambda: completed(system, shop, redact_id))
    assert done["counts"]["orders_redacted"] == 1 and done["counts"]["touchpoints_deleted"] == 2
    assert where_found(settings, shop["tenant_id"], alice_keys) == []
    assert poll("reports fresh", lambda: attributed(system, shop)) == before

    # shop/redact: everything that came through the source.
    gone = webhook(shop["url"], "shop/redact", {"shop_domain": "e2e.myshopify.com"}, "e2e-shop-1")
    assert gone.status_code == 200, gone.text
    shop_done = poll("shop redaction completed",
                     lambda: completed(system, shop, gone.json()["privacy_request_id"]))
    assert shop_done["counts"]["orders_redacted"] == 1
    _, bob_keys = derived(system, shop, BOB)
    assert where_found(settings, shop["tenant_id"], bob_keys) == []
    assert poll("reports fresh", lambda: attributed(system, shop)) == before
    kinds = sorted(r["kind"] for r in admin_get(system, shop, "/api/privacy/requests")["items"])
    assert kinds == ["data_request", "erasure", "shop_redact"]
    assert ALICE.email not in system.log_text()
