"""Every platform connected by its source URL and secret: a sale, then a refund that lowers
the order's channel revenue by exactly the refunded amount (real processes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest

from e2e_system import RunningSystem

pytestmark = pytest.mark.e2e

SECRETS = {
    "shopify": "shpss_e2e_providers",
    "stripe": "whsec_e2e_providers",
    "woocommerce": "4f1c0ffee2e2e2e2e2e2e2e2e2e2e2e2",
    "standard": "whsec_" + base64.b64encode(b"e2e-standard-webhooks-key-32byte").decode(),
}


def b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def shopify(body: bytes, topic: str, event_id: str) -> dict:
    return {"X-Shopify-Topic": topic, "X-Shopify-Event-Id": event_id,
            "X-Shopify-Hmac-Sha256": b64_hmac(SECRETS["shopify"].encode(), body)}


def stripe(body: bytes, *_: str) -> dict:
    stamp = int(time.time())
    signature = hmac.new(SECRETS["stripe"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={signature}"}


def woocommerce(body: bytes, topic: str, delivery: str) -> dict:
    return {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Delivery-ID": delivery,
            "X-WC-Webhook-Resource": "order", "X-WC-Webhook-Signature": b64_hmac(SECRETS["woocommerce"].encode(), body)}


def standard(body: bytes, _topic: str, message_id: str) -> dict:
    stamp = str(int(time.time()))
    key = base64.b64decode(SECRETS["standard"].removeprefix("whsec_"))
    signed = f"{message_id}.{stamp}.".encode() + body
    return {"webhook-id": message_id, "webhook-timestamp": stamp,
            "webhook-signature": f"v1,{b64_hmac(key, signed)}"}


NOW = int(time.time())
SCENARIOS = {
    # provider: (signer, order id, currency, channel, [(topic, delivery id, body)], gross, refunded)
    "shopify": (shopify, "880001", "USD", "paid_search", [
        ("orders/create", "e2e-s-1", {"id": 880001, "currency": "USD", "total_price": "60.00",
                                      "created_at": "2026-02-01T10:00:00Z",
                                      "landing_site": "/?utm_source=google&utm_medium=cpc&gclid=G1"}),
        ("refunds/create", "e2e-s-2", {"id": 77, "order_id": 880001, "created_at": "2026-02-02T10:00:00Z",
                                       "transactions": [{"id": 78, "kind": "refund", "status": "success",
                                                         "amount": "15.50", "currency": "USD",
                                                         "created_at": "2026-02-02T10:00:00Z"}]}),
    ], 6000, 1550),
    "stripe": (stripe, "pi_e2e0001", "USD", "paid_search", [
        ("payment_intent.succeeded", "", {
            "id": "evt_e2e_sale", "object": "event", "type": "payment_intent.succeeded", "created": NOW,
            "data": {"object": {"id": "pi_e2e0001", "object": "payment_intent", "amount": 5000,
                                "amount_received": 5000, "currency": "usd", "created": NOW - 5,
                                "status": "succeeded", "metadata": {"utm_source": "google", "utm_medium": "cpc"}}}}),
        ("charge.refunded", "", {
            "id": "evt_e2e_refund", "object": "event", "type": "charge.refunded", "created": NOW,
            "data": {"object": {"id": "ch_e2e0001", "object": "charge", "payment_intent": "pi_e2e0001",
                                "amount": 5000, "amount_captured": 5000, "amount_refunded": 1250,
                                "captured": True, "paid": True, "status": "succeeded", "currency": "usd",
                                "created": NOW - 5, "refunds": {"object": "list", "data": [
                                    {"id": "re_e2e0001", "object": "refund", "amount": 1250, "currency": "usd",
                                     "created": NOW, "status": "succeeded"}]}}}}),
    ], 5000, 1250),
    "woocommerce": (woocommerce, "7001", "USD", "email", [
        ("order.created", "wc-d1", {"id": 7001, "status": "processing", "currency": "USD", "total": "80.00",
                                    "date_created_gmt": "2026-03-01T14:45:10",
                                    "date_modified_gmt": "2026-03-01T14:45:14", "refunds": [],
                                    "meta_data": [{"id": 1, "key": "_wc_order_attribution_utm_source", "value": "newsletter"},
                                                  {"id": 2, "key": "_wc_order_attribution_utm_medium", "value": "email"}]}),
        ("order.updated", "wc-d2", {"id": 7001, "status": "completed", "currency": "USD", "total": "80.00",
                                    "date_created_gmt": "2026-03-01T14:45:10",
                                    "date_modified_gmt": "2026-03-02T10:00:00",
                                    "refunds": [{"id": 501, "total": "-20.00"}],
                                    "meta_data": [{"id": 1, "key": "_wc_order_attribution_utm_source", "value": "newsletter"},
                                                  {"id": 2, "key": "_wc_order_attribution_utm_medium", "value": "email"}]}),
    ], 8000, 2000),
    "standard": (standard, "S-1", "EUR", "organic_social", [
        ("order.created", "msg_e2e_1", {"type": "order.created", "timestamp": "2026-01-25T12:34:57Z", "data": {
            "order_id": "S-1", "currency": "EUR", "total": "40.00", "status": "paid",
            "created_at": "2026-01-25T12:34:56Z", "attribution": {"referrer": "https://www.facebook.com/"}}}),
        ("refund.created", "msg_e2e_2", {"type": "refund.created", "timestamp": "2026-01-26T12:34:57Z", "data": {
            "order_id": "S-1", "currency": "EUR",
            "refund": {"id": "R-1", "amount": "15.00", "created_at": "2026-01-26T12:00:00Z"}}}),
    ], 4000, 1500),
}


@pytest.fixture(scope="module")
def tenant(system: RunningSystem) -> dict:
    created = system.cli("tenant", "create", "every platform", "--json")
    created["urls"] = {
        provider: system.cli("source", "add", "--tenant", created["tenant_id"], "--provider", provider,
                             "--secret", secret, "--json")["url"]
        for provider, secret in SECRETS.items()
    }
    return created


def order_view(system: RunningSystem, tenant: dict, provider: str, order_id: str) -> dict | None:
    response = httpx.get(f"{system.api_url}/api/attribution/orders/{provider}/{order_id}",
                         headers={"Authorization": f"Bearer {tenant['api_key']}"}, timeout=5)
    return response.json() if response.status_code == 200 else None


def settled(system, tenant, provider, order_id, revenue) -> dict | None:
    view = order_view(system, tenant, provider, order_id)
    if not view or view["attribution_pending"] or view["revenue_cents"] != revenue:
        return None
    models = view["models"]
    if len(models) != 6 or not all(m["report_refreshed"] and m["allocated_cents"] == revenue for m in models.values()):
        return None
    return view


def poll(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


@pytest.mark.parametrize("provider", sorted(SCENARIOS))
def test_a_refund_lowers_the_channel_revenue_by_exactly_the_refunded_amount(system, tenant, provider):
    sign, order_id, currency, channel, events, gross, refunded = SCENARIOS[provider]
    (sale_topic, sale_id, sale), (refund_topic, refund_id, refund) = events

    def post(topic: str, delivery: str, document: dict) -> None:
        body = json.dumps(document).encode()
        response = httpx.post(tenant["urls"][provider], content=body, timeout=10,
                              headers={"Content-Type": "application/json", **sign(body, topic, delivery)})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted", response.json()

    post(sale_topic, sale_id, sale)
    before = poll(f"{provider} sale attributed", lambda: settled(system, tenant, provider, order_id, gross))
    assert before["currency"] == currency
    for model in before["models"].values():
        assert model["allocations"] == [
            {"channel": channel, "cents": gross, "gross_cents": gross, "refunded_cents": 0}]

    post(refund_topic, refund_id, refund)
    after = poll(f"{provider} refund attributed",
                 lambda: settled(system, tenant, provider, order_id, gross - refunded))
    assert (after["gross_cents"], after["refunded_cents"]) == (gross, refunded)
    for name, model in after["models"].items():
        was = {a["channel"]: a["cents"] for a in before["models"][name]["allocations"]}
        now = {a["channel"]: a["cents"] for a in model["allocations"]}
        assert was[channel] - now[channel] == refunded, name


def test_a_new_woocommerce_webhook_ping_is_answered_and_stores_nothing(system, tenant):
    response = httpx.post(tenant["urls"]["woocommerce"], content=b"webhook_id=42", timeout=5,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and response.json() == {"status": "ping"}


LEGACY = {
    # route: (provider, signer, topic, delivery id, body, external order id)
    "stripe/payment_intent_succeeded": ("stripe", stripe, "", "", {
        "id": "evt_legacy_sale", "object": "event", "type": "payment_intent.succeeded", "created": NOW,
        "data": {"object": {"id": "pi_legacy001", "object": "payment_intent", "amount": 700,
                            "amount_received": 700, "currency": "usd", "created": NOW - 5,
                            "status": "succeeded", "metadata": {}}}}, "pi_legacy001"),
    "woocommerce/order_completed": ("woocommerce", woocommerce, "order.updated", "wc-legacy", {
        "id": 7300, "status": "completed", "currency": "USD", "total": "7.00",
        "date_created_gmt": "2026-03-01T14:45:10", "date_modified_gmt": "2026-03-01T14:45:14",
        "refunds": [], "meta_data": []}, "7300"),
}


@pytest.mark.parametrize("route", sorted(LEGACY))
def test_the_earlier_systems_routes_take_the_tenant_key(system, tenant, route):
    provider, sign, topic, delivery, document, order_id = LEGACY[route]
    body = json.dumps(document).encode()
    headers = {"Content-Type": "application/json", "X-Skeldir-Tenant-Key": tenant["webhook_key"],
               **sign(body, topic, delivery)}
    response = httpx.post(f"{system.api_url}/api/webhooks/{route}", content=body, headers=headers, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "accepted", response.text
    poll(f"{route} order attributed", lambda: settled(system, tenant, provider, order_id, 700))
    wrong_key = {**headers, "X-Skeldir-Tenant-Key": tenant["api_key"]}
    assert httpx.post(f"{system.api_url}/api/webhooks/{route}", content=body, headers=wrong_key,
                      timeout=10).status_code == 401
