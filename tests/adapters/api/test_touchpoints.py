"""Touchpoint collection over HTTP (the real app on real PostgreSQL): per-item validation,
idempotency, collect-key scope, stitch keys instead of tokens, the snippet and CORS."""

from __future__ import annotations

import json

from db_helpers import create_tenant
from skeldir.base.db import owner_connection


def visit(touchpoint_id: str, **extra) -> dict:
    return {"id": touchpoint_id, "visitor_id": "visitor-1", "occurred_at": "2026-03-01T10:00:00Z",
            "url": "https://shop.example/landing?utm_source=google&utm_medium=cpc&gclid=G-1", **extra}


def post(client, key: str | None, document) -> object:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/api/touchpoints", content=json.dumps(document), headers=headers)


def test_valid_items_are_kept_and_invalid_ones_reported(client, database):
    tenant = create_tenant(database)
    batch = {"touchpoints": [
        visit("t-1"),
        visit("t-2", utm_source="newsletter", checkout_token="chk-secret-token", customer_ref="Alex@Example.com"),
        {"id": "t-3", "visitor_id": "", "occurred_at": "yesterday", "url": 7},
        "not an object",
        visit("t-4", occurred_at="2999-01-01T00:00:00Z"),
    ]}
    response = post(client, tenant.collect_key, batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    errors = {r["index"]: r["errors"] for r in body["rejected"]}
    assert set(errors) == {2, 3, 4}
    assert any("visitor_id" in e for e in errors[2]) and any("occurred_at" in e for e in errors[2])
    assert any("url" in e for e in errors[2]) and errors[4] == ["occurred_at is in the future"]

    again = post(client, tenant.collect_key, {"touchpoints": [visit("t-1"), visit("t-2")]}).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)

    with owner_connection(database) as conn:
        rows = {r[0]: r for r in conn.execute(
            "SELECT touchpoint_id, hints, checkout_key, customer_key, to_jsonb(t)::text"
            " FROM touchpoints t WHERE tenant_id = %s", (tenant.tenant_id,))}
    assert set(rows) == {"t-1", "t-2"}
    assert rows["t-1"][1]["utm_source"] == "google" and rows["t-1"][1]["click_ids"] == [["gclid", "G-1"]]
    assert rows["t-2"][1]["utm_source"] == "newsletter", "explicit utm fields override the URL's"
    assert rows["t-2"][2] is not None and len(rows["t-2"][3]) == 32
    assert "chk-secret-token" not in rows["t-2"][4] and "alex@example.com" not in rows["t-2"][4].lower()


def test_a_touchpoint_keeps_its_campaign_keys_and_its_ad_platform(client, database):
    tenant = create_tenant(database)
    meta = visit("c-1", url="https://shop.example/p?utm_source=facebook&utm_medium=paid_social"
                 "&utm_campaign=Spring&utm_id=120&skd_adset=121&skd_ad=122&utm_content=video"
                 "&utm_term=shoes&fbclid=F")
    tiktok = visit("c-2", url="https://shop.example/p?ttclid=T", utm_id="77", skd_ad="79")
    organic = visit("c-3", url="https://shop.example/p", referrer="https://www.google.com/")
    response = post(client, tenant.collect_key, {"touchpoints": [meta, tiktok, organic]})
    assert response.json()["accepted"] == 3, response.text
    with owner_connection(database) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT touchpoint_id, hints, channel, platform FROM touchpoints"
            " WHERE tenant_id = %s", (tenant.tenant_id,))}
    hints, channel, platform = rows["c-1"]
    assert (channel, platform) == ("paid_social", "meta")
    assert {k: hints[k] for k in ("utm_campaign", "utm_id", "skd_adset", "skd_ad", "utm_content",
                                  "utm_term")} == {
        "utm_campaign": "Spring", "utm_id": "120", "skd_adset": "121", "skd_ad": "122",
        "utm_content": "video", "utm_term": "shoes"}
    assert hints["click_ids"] == [["fbclid", "F"]]
    assert rows["c-2"][2] == "tiktok" and rows["c-2"][0]["utm_id"] == "77"
    assert rows["c-2"][0]["skd_ad"] == "79"
    assert rows["c-3"][1:] == ("organic_search", "")


def test_only_a_collect_or_admin_key_writes_and_a_collect_key_reads_nothing(client, database):
    tenant = create_tenant(database)
    batch = {"touchpoints": [visit("k-1")]}
    assert post(client, None, batch).status_code == 401
    assert post(client, "skd_" + "0" * 32 + "_nope", batch).status_code == 401
    assert post(client, tenant.webhook_key, batch).status_code == 403
    assert post(client, tenant.api_key, batch).status_code == 200
    read = client.get("/api/attribution/orders/shopify/1",
                      headers={"Authorization": f"Bearer {tenant.collect_key}"})
    assert read.status_code == 403


def test_malformed_batches_are_refused_whole(client, database):
    tenant = create_tenant(database)
    assert post(client, tenant.collect_key, {"touchpoints": []}).status_code == 400
    assert post(client, tenant.collect_key, {"touchpoints": [visit(f"x-{n}") for n in range(1001)]}).status_code == 400
    assert post(client, tenant.collect_key, [1, 2]).status_code == 400
    response = client.post("/api/touchpoints", content=b"{nope",
                           headers={"Authorization": f"Bearer {tenant.collect_key}"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_snippet_and_the_browser_preflight(client):
    snippet = client.get("/collect.js")
    assert snippet.status_code == 200
    assert snippet.headers["content-type"].startswith("application/javascript")
    assert b"/api/touchpoints" in snippet.content and b"localStorage" in snippet.content
    preflight = client.options("/api/touchpoints", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in preflight.headers["access-control-allow-headers"]


def test_identify_items_link_tokens_and_own_site_referrers_are_navigation(client, database):
    tenant = create_tenant(database)
    batch = {"touchpoints": [
        {"id": "i-1", "kind": "identify", "visitor_id": "visitor-1",
         "occurred_at": "2026-03-01T10:05:00Z", "checkout_token": "chk-9"},
        {"id": "i-2", "kind": "identify", "visitor_id": "visitor-1", "occurred_at": "2026-03-01T10:05:00Z"},
        visit("n-1", url="https://shop.example/cart", referrer="https://shop.example/product/1"),
        visit("n-2", referrer="https://www.bing.com/" + "x" * 5000),
    ]}
    body = post(client, tenant.collect_key, batch).json()
    assert body["accepted"] == 3
    assert [r["index"] for r in body["rejected"]] == [1]
    assert "identify" in body["rejected"][0]["errors"][0]
    with owner_connection(database) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT touchpoint_id, is_visit, hints->>'referring_domain', checkout_key IS NOT NULL"
            " FROM touchpoints WHERE tenant_id = %s", (tenant.tenant_id,))}
    assert rows["i-1"] == (False, None, True)
    assert rows["n-1"] == (True, None, False), "a referrer on the shop's own site is navigation"
    assert rows["n-2"] == (True, "www.bing.com", False), "a long referrer is cut to its host"
