"""Revocation and source changes reach a running API process within a second, also after
PostgreSQL restarted under it (its listening connection is lost with the server and must be
re-established, or every change would wait for the cache to expire)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time

import httpx
import psycopg
import pytest

from fault_system import WEBHOOK_PATH, FaultSystem, Tenant, order_body, poll, signed_headers
from skeldir.base.crypto import secret_box
from skeldir.operations import tenants

pytestmark = pytest.mark.faults

# The promise is one second; the poll allows for the round trips of the poll itself.
PROMPTLY = 1.5
_order_ids = itertools.count(7_300_000)


def deliver(client: httpx.Client, tenant: Tenant, secret: str | None = None) -> int:
    order_id = next(_order_ids)
    body = order_body(order_id)
    headers = signed_headers(tenant, body, f"revocation-{order_id}")
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(digest).decode()
    return client.post(WEBHOOK_PATH, content=body, headers=headers).status_code


def restart_postgres(system: FaultSystem, client: httpx.Client, tenant: Tenant) -> None:
    system.postgres.stop()
    system.postgres.start()
    poll("deliveries are accepted again after the restart",
         lambda: deliver(client, tenant) == 200, 30, system.logs)


def refused_promptly(system: FaultSystem, what: str, attempt) -> None:
    started = time.monotonic()
    poll(what, lambda: attempt() == 401, PROMPTLY, system.logs, interval=0.05)
    assert time.monotonic() - started < PROMPTLY


def test_a_retired_secret_stops_verifying_within_a_second_after_a_database_restart(system):
    tenant = system.create_tenant("secret rotated after a restart")
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        assert deliver(client, tenant) == 200  # the source is now in the API's cache
        restart_postgres(system, client, tenant)
        with psycopg.connect(system.settings.owner_database_url) as conn:
            tenants.rotate_secret(conn, secret_box(system.settings), tenant_id=tenant.tenant_id,
                                source_id=tenant.source_id, secret="shpss_rotated",
                                retire_others=True)
        refused_promptly(system, "the retired secret is refused",
                         lambda: deliver(client, tenant))
        assert deliver(client, tenant, secret="shpss_rotated") == 200


def test_a_revoked_webhook_key_is_refused_within_a_second_after_a_database_restart(system):
    tenant = system.create_tenant("key revoked after a restart")
    admin_auth = {"Authorization": f"Bearer {tenant.api_key}"}
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        assert deliver(client, tenant) == 200
        restart_postgres(system, client, tenant)
        # Long enough after the restart that the API listens again, whenever it does.
        poll("the API's listener is back",
             lambda: listening_sessions(system) >= 1, 30, system.logs)
        keys = client.get("/api/keys", headers=admin_auth).json()
        webhook_key = next(k for k in keys["items"] if k["scope"] == "webhook")
        revoked = client.delete(f"/api/keys/{webhook_key['key_id']}", headers=admin_auth)
        assert revoked.status_code == 200, revoked.text
        refused_promptly(system, "the revoked webhook key is refused",
                         lambda: deliver(client, tenant))


def listening_sessions(system: FaultSystem) -> int:
    with psycopg.connect(system.postgres.dsn(), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND query ILIKE 'LISTEN %%'",
            (system.settings.runtime_role,),
        ).fetchone()[0]
