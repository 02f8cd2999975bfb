"""Several hosts as one system: two API hosts behind HAProxy, two worker hosts, a PostgreSQL
primary and its streaming replica, one Redis, each in its own network namespace.

Killing an API host and a worker host under a steady signed-webhook load loses nothing: every
webhook answered 200 is stored once and attributed once, and the reports equal a rebuild. A
flooding tenant is held to the configured rate across both API hosts while its neighbour is
served, and reports read from the replica equal the primary's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
from attribution_checks import _check
from cluster import BURST, SHOPIFY_SECRET, WEBHOOKS_PER_SECOND, Cluster, poll

from skeldir.base.crypto import secret_box
from skeldir.operations import tenants

pytestmark = pytest.mark.cluster


def run_load(cluster: Cluster, streams: list[dict], on_progress=None) -> dict:
    out = cluster.directory / f"out-{uuid.uuid4().hex[:6]}.json"
    progress = cluster.directory / f"progress-{uuid.uuid4().hex[:6]}.json"
    spec = {"url": cluster.lb_url, "secret": SHOPIFY_SECRET, "streams": streams,
            "out": str(out), "progress": str(progress)}
    driver = cluster.load(spec)
    if on_progress is not None:
        on_progress(lambda: json.loads(progress.read_text()) if progress.exists() else {})
    assert driver.wait(120) == 0, cluster.log("load")
    return json.loads(out.read_text())


def stream(name: str, tenant: dict, *, first: int, rate: float, attempts: int = 1,
           concurrency: int = 1, **length: float) -> dict:
    """`length`: seconds=S or orders=N (or both: whichever ends first)."""
    return {"name": name, "path": urlsplit(tenant["url"]).path, "first_order": first,
            "rate": rate, "attempts": attempts, "concurrency": concurrency, **length}


def stored_orders(cluster: Cluster, tenant: dict) -> list[str]:
    with psycopg.connect(cluster.owner_socket_url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT external_order_id FROM orders WHERE tenant_id = %s", (tenant["tenant_id"],))]


def backlog(cluster: Cluster, tenant: dict) -> tuple[int, int, int]:
    with psycopg.connect(cluster.owner_socket_url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM pending_orders WHERE tenant_id = %(t)s),"
            " (SELECT count(*) FROM report_dirty_orders WHERE tenant_id = %(t)s),"
            " (SELECT count(*) FROM orders o WHERE tenant_id = %(t)s AND NOT EXISTS"
            "   (SELECT 1 FROM order_attributions a"
            "     WHERE a.tenant_id = o.tenant_id AND a.order_id = o.order_id))",
            {"t": tenant["tenant_id"]}).fetchone()


def test_killing_an_api_host_and_a_worker_host_loses_no_webhook(cluster):
    tenant = cluster.create_tenant("steady")

    def kill_midway(progress) -> None:
        poll("a third of the load answered", lambda: progress().get("steady", 0) >= 60, 60,
             cluster.logs)
        cluster.kill("api1")
        cluster.kill("worker2")

    result = run_load(cluster, [stream("steady", tenant, first=1, rate=8, seconds=22,
                                       attempts=50)], kill_midway)["steady"]
    assert result["never_200"] == [], f"orders never answered 200: {result}"
    answered = result["answered_200"]
    assert len(answered) > 150, result
    poll("every order attributed and reported", lambda: backlog(cluster, tenant) == (0, 0, 0),
         90, lambda: f"pending, dirty, unattributed: {backlog(cluster, tenant)}\n{cluster.logs()}")
    stored = stored_orders(cluster, tenant)
    assert sorted(stored) == sorted(str(order) for order in answered), "stored once each"
    figures = asyncio.run(_check(cluster.owner_socket_url, tenant["tenant_id"]))
    assert figures["orders"] == len(answered)
    assert figures["net_minor"] == 1050 * len(answered)
    # Some requests met the dying host: they were answered 502 or not at all, and sent again.
    print(f"statuses while hosts were killed: {result['statuses']}")


def test_a_flooding_tenant_is_held_to_the_rate_across_both_api_hosts(cluster):
    if "api1" not in cluster.processes:
        cluster.start_api("api1")
    poll("HAProxy sees both API hosts", lambda: all(
        cluster.http("lb", f"http://{cluster.address(h)}:8000/healthz") == 200
        for h in ("api1", "api2")), 30, cluster.logs)
    flooder, neighbour = cluster.create_tenant("flooder"), cluster.create_tenant("neighbour")
    result = run_load(cluster, [
        stream("flood", flooder, first=1, rate=0, orders=400, concurrency=16),
        stream("neighbour", neighbour, first=1, rate=5, seconds=10),
    ])
    flood, calm = result["flood"], result["neighbour"]
    admitted = len(flood["answered_200"])
    sent = sum(flood["statuses"].values())
    allowance = BURST + WEBHOOKS_PER_SECOND * flood["seconds"]
    print(f"flood: {sent} sent, {admitted} admitted, allowance {allowance:.0f}; {flood['statuses']}")
    # Per-process buckets would admit up to twice the allowance, so a flood well over the
    # allowance would show more than it admitted; a flood under it would prove nothing.
    assert sent > 1.3 * allowance, f"the flood was too slow to tell: {flood}"
    assert admitted <= allowance * 1.05 + 2, f"{admitted} admitted, allowance {allowance:.0f}"
    assert admitted >= allowance * 0.6, f"{admitted} admitted, allowance {allowance:.0f}"
    assert set(flood["statuses"]) <= {"200", "429"}, flood["statuses"]
    assert calm["never_200"] == [] and calm["statuses"] == {"200": len(calm["answered_200"])}
    for host in ("api1", "api2"):
        metrics = cluster.get_text("lb", f"http://{cluster.address(host)}:8000/metrics")
        assert "rate_limit_fallbacks_total 0.0" in metrics, f"{host} limited on its own"


def test_reports_read_from_the_replica_equal_the_primarys(cluster):
    tenant = cluster.create_tenant("reader")
    run_load(cluster, [stream("orders", tenant, first=1, rate=50, seconds=2, attempts=10)])
    poll("every order attributed and reported", lambda: backlog(cluster, tenant) == (0, 0, 0),
         60, cluster.logs)
    headers = {"Authorization": f"Bearer {tenant['api_key']}"}
    status = poll("the replica serves reads and has caught up", lambda: (
        s := cluster.get_json("lb", f"{cluster.lb_url}/api/status", headers)["read_replica"]
    )["serving_reads"] and s["lag_bytes"] == 0 and s, 30, cluster.logs)
    assert status["configured"] is True
    query = "SELECT model, day, currency, channel, net_minor, orders FROM channel_daily" \
            " WHERE tenant_id = %s ORDER BY 1, 2, 3, 4"
    with psycopg.connect(cluster.owner_socket_url) as conn:
        on_primary = conn.execute(query, (tenant["tenant_id"],)).fetchall()
    with psycopg.connect(cluster.standby.dsn(), dbname=urlsplit(
            cluster.owner_socket_url).path.lstrip("/")) as conn:
        on_replica = conn.execute(query, (tenant["tenant_id"],)).fetchall()
    assert on_primary and on_replica == on_primary
    report = cluster.get_json("lb", f"{cluster.lb_url}/api/attribution/channels?model=last_touch"
                              "&from=2026-01-01&to=2026-02-01", headers)
    assert sum(row["net_cents"] for row in report["rows"]) == 1050 * len(
        stored_orders(cluster, tenant))


def signed(secret: str, order_id: int) -> tuple[bytes, dict]:
    body = json.dumps({"id": order_id, "total_price": "10.50", "currency": "USD",
                       "created_at": "2026-01-25T12:34:56Z"}).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return body, {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                  "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}


def test_a_rotated_secret_and_a_revoked_key_are_refused_by_every_api_host(cluster):
    tenant = cluster.create_tenant("rotating")
    path = urlsplit(tenant["url"]).path
    hosts = ("api1", "api2")
    urls = {host: f"http://{cluster.address(host)}:8000" for host in hosts}
    # Each host has the source in its cache.
    for order, host in enumerate(hosts, start=1):
        assert cluster.post("lb", urls[host] + path, *signed(SHOPIFY_SECRET, order)) == 200
    new_secret = "shpss_rotated_secret"
    with psycopg.connect(cluster.owner_socket_url) as conn:
        tenants.rotate_secret(conn, secret_box(cluster.settings), tenant_id=tenant["tenant_id"],
                              source_id=tenant["source_id"], secret=new_secret,
                              retire_others=True)
    rotated_at = time.monotonic()
    order = iter(range(100, 10_000))
    poll("every host refuses the retired secret", lambda: all(
        cluster.post("lb", urls[h] + path, *signed(SHOPIFY_SECRET, next(order))) == 401
        for h in hosts), 10, cluster.logs, interval=0.05)
    print(f"retired secret refused by both hosts {time.monotonic() - rotated_at:.2f} s after"
          " the rotation committed")
    for host in hosts:
        assert cluster.post("lb", urls[host] + path, *signed(new_secret, next(order))) == 200

    headers = {"Authorization": f"Bearer {tenant['api_key']}"}
    assert all(cluster.http("lb", urls[h] + "/api/status", headers) == 200 for h in hosts)
    with psycopg.connect(cluster.owner_socket_url) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s",
                     (tenant["tenant_id"],))
    # Keys are looked up on every request: refused at once, on every host.
    assert [cluster.http("lb", urls[h] + "/api/status", headers) for h in hosts] == [401, 401]
