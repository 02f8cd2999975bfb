"""The dashboard over HTTP (the real app on real PostgreSQL): the page and its assets carry a
strict Content-Security-Policy, and `/api/status` reports one tenant's ingest and freshness."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import urlsplit

from db_helpers import SHOPIFY_SECRET, create_tenant, order_body
from skeldir.adapters.api.dashboard import CONTENT_SECURITY_POLICY
from skeldir.base.db import owner_connection

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def assert_security_headers(response) -> None:
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def status(client, key: str | None):
    return client.get("/api/status", headers={"Authorization": f"Bearer {key}"} if key else {})


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert_security_headers(page)
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == policy["script-src"] == policy["connect-src"] == "'self'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    html = page.text
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script type="module" src="/dashboard/dashboard.js">'
    ], "the one script is the module; nothing inline"
    assert not re.search(r"\b(?:src|href)=\"(?:https?:)?//", html), "nothing from another origin"

    for asset, media_type in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        response = client.get(f"/dashboard/{asset}")
        assert response.status_code == 200, asset
        assert response.headers["content-type"].startswith(media_type)
        assert_security_headers(response)
        # The SVG namespace is a name, never fetched.
        assert "://" not in response.text.replace(SVG_NAMESPACE, ""), f"{asset} names an origin"
    for missing in ("index.html", "__init__.py", "..%2Fapi%2Fdashboard.py", "nope.js"):
        assert client.get(f"/dashboard/{missing}").status_code == 404, missing


def test_status_needs_a_reader_key(client, database):
    tenant = create_tenant(database)
    assert status(client, None).status_code == 401
    assert status(client, "skd_" + "0" * 32 + "_nope").status_code == 401
    assert status(client, tenant.collect_key).status_code == 403
    assert status(client, tenant.api_key).json()["scope"] == "admin"


def test_status_counts_one_tenants_events_dead_events_and_pending_orders(client, database):
    tenant, other = create_tenant(database), create_tenant(database)
    quiet = status(client, tenant.api_key).json()
    assert quiet["tenant_id"] == str(tenant.tenant_id)
    assert quiet["ingest"] == {"events_last_hour": 0, "events_last_24h": 0, "last_event_at": None,
                               "dead_events_unreplayed": 0}
    assert quiet["freshness"]["reports_fresh"] is True
    assert quiet["freshness"]["oldest_pending_at"] is None

    body = order_body(770001)
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    response = client.post(urlsplit(tenant.source_url).path, content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()})
    assert response.json()["status"] == "accepted", response.text
    with owner_connection(database) as conn:
        conn.execute(
            "INSERT INTO dead_events (tenant_id, source_id, provider, topic, reason, body_sha256,"
            " body_ciphertext) VALUES (%s, %s, 'shopify', 'orders/create', 'test', %s, %s),"
            " (%s, %s, 'shopify', 'orders/create', 'test', %s, %s)",
            (tenant.tenant_id, tenant.source_id, b"a" * 32, b"x",
             tenant.tenant_id, tenant.source_id, b"b" * 32, b"x"),
        )
        conn.execute("UPDATE dead_events SET replayed_at = now(), replay_outcome = 'duplicate',"
                     " replayed_event_id = gen_random_uuid() WHERE tenant_id = %s"
                     " AND body_sha256 = %s", (tenant.tenant_id, b"b" * 32))

    busy = status(client, tenant.api_key).json()
    ingest, freshness = busy["ingest"], busy["freshness"]
    assert (ingest["events_last_hour"], ingest["events_last_24h"]) == (1, 1)
    assert ingest["last_event_at"] is not None
    assert ingest["dead_events_unreplayed"] == 1, "a replayed dead event is no longer counted"
    # No worker runs here: the order stays pending, so the reports are not fresh.
    assert freshness["pending_orders"] == 1 and freshness["reports_fresh"] is False
    assert freshness["oldest_pending_age_seconds"] >= 0
    assert freshness["last_attributed_at"] is None

    assert status(client, other.api_key).json()["ingest"]["events_last_24h"] == 0
