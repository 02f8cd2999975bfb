"""Per-tenant rate limits: the token bucket's law (never more than rate * t + burst over any
window, and Retry-After is honest), bounded memory, and over HTTP on real PostgreSQL a flooding
tenant refused with 429 while another tenant in the same moments is served."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from db_helpers import SHOPIFY_SECRET, create_tenant, order_body
from skeldir.adapters.app import create_app
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection
from skeldir.base.http.rate_limits import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


rates = st.floats(min_value=0.05, max_value=1000)
bursts = st.floats(min_value=1, max_value=50)
# Gaps between requests: mostly bursts (0), sometimes pauses long enough to refill.
gaps = st.lists(st.one_of(st.just(0.0), st.floats(0, 0.05), st.floats(0, 30)), max_size=150)


@settings(max_examples=300, deadline=None)
@given(rate=rates, burst=bursts, gaps=gaps)
def test_no_window_admits_more_than_rate_times_its_length_plus_the_burst(rate, burst, gaps):
    clock = Clock()
    buckets = TokenBuckets(rate, burst, clock=clock)
    admitted = []
    for gap in gaps:
        clock.now += gap
        if buckets.acquire("tenant") == 0:
            admitted.append(clock.now)
    for first in range(len(admitted)):
        for last in range(first, len(admitted)):
            window = admitted[last] - admitted[first]
            assert last - first + 1 <= rate * window + burst + 1e-6


@settings(max_examples=300, deadline=None)
@given(rate=rates, burst=bursts, gaps=gaps)
def test_after_the_wait_it_names_a_request_is_admitted(rate, burst, gaps):
    clock = Clock()
    buckets = TokenBuckets(rate, burst, clock=clock)
    for gap in gaps:
        clock.now += gap
        wait = buckets.acquire("tenant")
        if wait > 0:
            clock.now += wait * (1 + 1e-9) + 1e-9
            assert buckets.acquire("tenant") == 0


def test_a_full_bucket_admits_its_burst_at_once_then_refuses():
    clock = Clock()
    buckets = TokenBuckets(rate=2, burst=5, clock=clock)
    assert [buckets.acquire("a") for _ in range(5)] == [0.0] * 5
    assert buckets.acquire("a") == pytest.approx(0.5)
    assert buckets.acquire("b") == 0.0, "another tenant has its own bucket"
    clock.now += 0.5
    assert buckets.acquire("a") == 0.0


def test_a_rate_of_zero_is_no_limit():
    buckets = TokenBuckets(rate=0, burst=1, clock=Clock())
    assert all(buckets.acquire("a") == 0 for _ in range(10_000))
    assert len(buckets) == 0


def test_idle_tenants_are_forgotten_and_memory_is_capped():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=20, clock=clock, max_keys=100)
    for tenant in range(50):
        buckets.acquire(tenant)
    assert len(buckets) == 50
    clock.now += 2  # burst / rate: every bucket is full again, the same as a new one
    buckets.acquire("active")
    assert len(buckets) == 1
    for tenant in range(1000):
        buckets.acquire(tenant)
    assert len(buckets) == 100


def test_the_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SKELDIR_RATE_LIMIT_WEBHOOKS_PER_SECOND", "100")
    monkeypatch.setenv("SKELDIR_RATE_LIMIT_WEBHOOKS_BURST", "200")
    monkeypatch.setenv("SKELDIR_RATE_LIMIT_API_PER_SECOND", "0")
    monkeypatch.setenv("SKELDIR_RATE_LIMIT_API_BURST", "7.5")
    monkeypatch.setenv("SKELDIR_RATE_LIMIT_COLLECT_PER_SECOND", "30")
    monkeypatch.setenv("SKELDIR_RATE_LIMIT_COLLECT_BURST", "60")
    configured = Settings.from_env()
    assert (configured.rate_limit_collect_per_second, configured.rate_limit_collect_burst) == (
        30, 60)
    assert (configured.rate_limit_webhooks_per_second, configured.rate_limit_webhooks_burst,
            configured.rate_limit_api_per_second, configured.rate_limit_api_burst) == (
        100, 200, 0, 7.5)
    assert configured.as_env()["SKELDIR_RATE_LIMIT_API_BURST"] == "7.5"
    defaults = Settings()
    assert defaults.rate_limit_api_per_second > 0 and defaults.rate_limit_webhooks_per_second > 0


# --- over HTTP --------------------------------------------------------------------------------

BURST = 5


@pytest.fixture(scope="module")
def client(database: Settings):
    # A bucket that refills once every 100 s: within this test it only empties.
    limited = replace(
        database, broker_url="memory://",
        rate_limit_api_per_second=0.01, rate_limit_api_burst=BURST,
        rate_limit_webhooks_per_second=0.01, rate_limit_webhooks_burst=BURST,
        rate_limit_collect_per_second=0.01, rate_limit_collect_burst=BURST,
    )
    with TestClient(create_app(limited)) as test_client:
        yield test_client


def rate_limited_total(client, kind: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "rate_limited_total" and sample.labels == {"kind": kind}:
                return sample.value
    return 0.0


def assert_too_many_requests(response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == 429


def test_a_flooding_tenant_is_refused_while_another_is_served(client, database):
    flooder, neighbour = create_tenant(database, "flooder"), create_tenant(database, "neighbour")
    before = rate_limited_total(client, "api")
    flooded, served = [], []
    for attempt in range(3 * BURST):
        flooded.append(client.get("/api/status", headers=bearer(flooder.api_key)))
        if attempt < BURST:
            served.append(client.get("/api/status", headers=bearer(neighbour.api_key)))
    assert [r.status_code for r in flooded[:BURST]] == [200] * BURST
    for response in flooded[BURST:]:
        assert_too_many_requests(response)
    assert [r.status_code for r in served] == [200] * BURST
    assert rate_limited_total(client, "api") - before == 2 * BURST
    # Touchpoint collection has its own bucket: the flooded API does not stop a shop's pages.
    visit = {"id": "t-1", "visitor_id": "v-1", "occurred_at": "2026-03-01T10:00:00Z",
             "url": "https://shop.example/"}
    collected = client.post("/api/touchpoints", json={"touchpoints": [visit]},
                            headers=bearer(flooder.collect_key))
    assert collected.status_code == 200, collected.text


VISIT = {"id": "t-1", "visitor_id": "v-1", "occurred_at": "2026-03-01T10:00:00Z",
         "url": "https://shop.example/"}


def test_a_key_of_the_wrong_scope_is_refused_without_spending_the_budget(client, database):
    # The collect key is public (it is in the shop's pages): whoever copies it must not be able
    # to drive the admin key into 429s, nor a webhook key the collection budget.
    shop = create_tenant(database, "copied collect key")
    before = rate_limited_total(client, "api")
    for _ in range(3 * BURST):
        refused = client.get("/api/status", headers=bearer(shop.collect_key))
        assert refused.status_code == 403, refused.text
        refused = client.post("/api/touchpoints", json={"touchpoints": [VISIT]},
                              headers=bearer(shop.webhook_key))
        assert refused.status_code == 403, refused.text
    assert [client.get("/api/status", headers=bearer(shop.api_key)).status_code
            for _ in range(BURST)] == [200] * BURST
    assert rate_limited_total(client, "api") == before
    assert [client.post("/api/touchpoints", json={"touchpoints": [VISIT]},
                        headers=bearer(shop.collect_key)).status_code
            for _ in range(BURST)] == [200] * BURST


def test_collection_has_a_budget_of_its_own(client, database):
    shop = create_tenant(database, "busy pages")
    collected = [client.post("/api/touchpoints", json={"touchpoints": [VISIT]},
                             headers=bearer(shop.collect_key)) for _ in range(2 * BURST)]
    assert [r.status_code for r in collected[:BURST]] == [200] * BURST
    for response in collected[BURST:]:
        assert_too_many_requests(response)
    # Its pages spent the collection budget, not the API's.
    assert [client.get("/api/status", headers=bearer(shop.api_key)).status_code
            for _ in range(BURST)] == [200] * BURST


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_order(client, tenant, order_id: int):
    body = order_body(order_id)
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return client.post(urlsplit(tenant.source_url).path, content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()})


def stored_events(database: Settings, tenant) -> int:
    with owner_connection(database) as conn:
        return conn.execute("SELECT count(*) FROM webhook_events WHERE tenant_id = %s",
                            (tenant.tenant_id,)).fetchone()[0]


def test_webhooks_over_the_limit_are_429_and_not_stored(client, database):
    flooder, neighbour = create_tenant(database, "shop a"), create_tenant(database, "shop b")
    before = rate_limited_total(client, "webhooks")
    flooded = [post_order(client, flooder, 880000 + n) for n in range(2 * BURST)]
    served = [post_order(client, neighbour, 890000 + n) for n in range(BURST)]
    assert [r.json()["status"] for r in flooded[:BURST]] == ["accepted"] * BURST
    for response in flooded[BURST:]:
        assert_too_many_requests(response)
    assert [r.json()["status"] for r in served] == ["accepted"] * BURST
    # Refused deliveries are not stored: the provider sends them again later.
    assert stored_events(database, flooder) == BURST
    assert stored_events(database, neighbour) == BURST
    assert rate_limited_total(client, "webhooks") - before == BURST
    # A bad signature is refused before the limit: an unverified request spends no token.
    forged = client.post(urlsplit(neighbour.source_url).path, content=b"{}", headers={
        "Content-Type": "application/json", "X-Shopify-Hmac-Sha256": "AAAA"})
    assert forged.status_code == 401
