"""A visitor's journey end to end: touchpoints from the collector, then the signed order that
carries the visitor's checkout token; every model credits the journey exactly, and a late
touchpoint re-attributes the order (real processes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

pytestmark = pytest.mark.e2e

SECRET = "shpss_journey"
ORDERED_AT = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def at(days_before: float) -> str:
    return (ORDERED_AT - timedelta(days=days_before)).isoformat()


JOURNEY = [
    {"id": "j-1", "visitor_id": "visitor-j", "occurred_at": at(3),
     "url": "https://shop.example/?utm_source=google&utm_medium=cpc&gclid=GJ1"},
    {"id": "j-2", "visitor_id": "visitor-j", "occurred_at": at(2),
     "url": "https://shop.example/blog", "referrer": "https://www.facebook.com/"},
    {"id": "j-3", "visitor_id": "visitor-j", "occurred_at": at(1),
     "url": "https://shop.example/?utm_source=newsletter&utm_medium=email", "checkout_token": "chk-journey-1"},
    # Another visitor and a visit after the order: neither may get credit.
    {"id": "o-1", "visitor_id": "visitor-other", "occurred_at": at(1),
     "url": "https://shop.example/?utm_source=tiktok&utm_medium=paid_social"},
    {"id": "j-late", "visitor_id": "visitor-j", "occurred_at": at(-1),
     "url": "https://shop.example/?utm_source=google&utm_medium=cpc"},
]


@pytest.fixture(scope="module")
def shop(system):
    tenant = system.cli("tenant", "create", "journey shop", "--json")
    source = system.cli("source", "add", "--tenant", tenant["tenant_id"], "--provider", "shopify",
                        "--secret", SECRET, "--json")
    return {**tenant, **source}


def collect(system, shop, touchpoints) -> dict:
    response = httpx.post(f"{system.api_url}/api/touchpoints", json={"touchpoints": touchpoints},
                          headers={"Authorization": f"Bearer {shop['collect_key']}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def credits_by_model(system, shop) -> dict | None:
    response = httpx.get(f"{system.api_url}/api/attribution/orders/shopify/990001",
                         headers={"Authorization": f"Bearer {shop['api_key']}"}, timeout=5)
    if response.status_code != 200:
        return None
    view = response.json()
    if view["attribution_pending"] or not all(m["report_refreshed"] for m in view["models"].values()):
        return None
    return view


def poll(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


def channels(view, model) -> dict[str, int]:
    return {a["channel"]: a["cents"] for a in view["models"][model]["allocations"]}


def test_a_stitched_journey_is_credited_by_every_model_and_a_late_visit_reattributes(system, shop):
    assert collect(system, shop, JOURNEY)["accepted"] == len(JOURNEY)
    order = {"id": 990001, "currency": "USD", "total_price": "100.00", "created_at": ORDERED_AT.isoformat(),
             "checkout_token": "chk-journey-1", "landing_site": "/?utm_source=newsletter&utm_medium=email"}
    body = json.dumps(order).encode()
    digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    response = httpx.post(shop["url"], content=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": digest})
    assert response.status_code == 200, response.text

    view = poll("journey attributed", lambda: credits_by_model(system, shop))
    assert [step["touchpoint_id"] for step in view["path"]] == ["j-1", "j-2", "j-3"]
    assert [step["channel"] for step in view["path"]] == ["paid_search", "organic_social", "email"]
    assert channels(view, "first_touch") == {"paid_search": 10000}
    assert channels(view, "last_touch") == {"email": 10000}
    assert channels(view, "last_non_direct") == {"email": 10000}
    assert channels(view, "linear") == {"paid_search": 3334, "organic_social": 3333, "email": 3333}
    assert channels(view, "position_based") == {"paid_search": 4000, "organic_social": 2000, "email": 4000}
    decay = channels(view, "time_decay")
    assert sum(decay.values()) == 10000 and decay["paid_search"] < decay["organic_social"] < decay["email"]
    for model, result in view["models"].items():
        assert result["is_balanced"] and result["allocated_cents"] == 10000, model
        assert sum(step["credits"][model] for step in view["path"]) == 10000, model

    late = {"id": "j-4", "visitor_id": "visitor-j", "occurred_at": at(0.5),
            "url": "https://shop.example/?utm_source=partner&utm_medium=affiliate"}
    assert collect(system, shop, [late])["orders_reattributed"] == 1
    view = poll("late visit re-attributed", lambda: (
        lambda v: v if v and len(v["path"]) == 4 else None)(credits_by_model(system, shop)))
    assert channels(view, "linear") == {"paid_search": 2500, "organic_social": 2500, "email": 2500,
                                        "affiliate": 2500}
    assert channels(view, "last_touch") == {"affiliate": 10000}

    performance = httpx.get(f"{system.api_url}/api/attribution/channels",
                            params={"model": "linear", "from": "2026-03-10", "to": "2026-03-10"},
                            headers={"Authorization": f"Bearer {shop['api_key']}"}, timeout=5).json()
    assert {(r["channel"], r["net_cents"]) for r in performance["rows"]} == {
        ("paid_search", 2500), ("organic_social", 2500), ("email", 2500), ("affiliate", 2500)}
