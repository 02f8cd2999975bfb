"""The API's pools: an acquire that finds every connection taken answers 503 with Retry-After
instead of waiting without end, webhooks keep a pool of their own, and every session carries
the statement and idle-in-transaction timeouts."""

from __future__ import annotations

from dataclasses import replace

from starlette.testclient import TestClient

from db_helpers import create_tenant
from skeldir.adapters.app import create_app
from skeldir.base.config import Settings


def test_a_request_that_finds_the_pool_taken_gets_503_with_retry_after(database: Settings):
    settings = replace(database, broker_url="memory://", db_pool_size=1,
                       db_acquire_timeout_seconds=0.2)
    tenant = create_tenant(database, "pool taken")
    with TestClient(create_app(settings)) as client:
        pool = client.app.state.pool
        held = client.portal.call(pool.acquire)
        try:
            refused = client.get("/api/status",
                                 headers={"Authorization": f"Bearer {tenant.api_key}"})
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            # Webhooks and health use the ingest pool, which nobody holds.
            assert client.get("/healthz").status_code == 200
        finally:
            client.portal.call(pool.release, held)
        served = client.get("/api/status", headers={"Authorization": f"Bearer {tenant.api_key}"})
        assert served.status_code == 200, served.text


def test_sessions_carry_the_statement_and_idle_in_transaction_timeouts(database: Settings):
    settings = replace(database, broker_url="memory://", db_statement_timeout_seconds=7,
                       db_idle_in_transaction_timeout_seconds=3)
    with TestClient(create_app(settings)) as client:
        for pool in (client.app.state.pool, client.app.state.ingest_pool):
            shown = client.portal.call(
                pool.fetchrow,
                "SELECT current_setting('statement_timeout') AS statement,"
                " current_setting('idle_in_transaction_session_timeout') AS idle",
            )
            assert (shown["statement"], shown["idle"]) == ("7s", "3s")


def test_the_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SKELDIR_DB_INGEST_POOL_SIZE", "3")
    monkeypatch.setenv("SKELDIR_DB_ACQUIRE_TIMEOUT_SECONDS", "1.5")
    monkeypatch.setenv("SKELDIR_LONG_OPERATIONS_PER_TENANT", "4")
    monkeypatch.setenv("SKELDIR_EXPORT_SEND_TIMEOUT_SECONDS", "12")
    configured = Settings.from_env()
    assert (configured.db_ingest_pool_size, configured.db_acquire_timeout_seconds,
            configured.long_operations_per_tenant, configured.export_send_timeout_seconds) == (
        3, 1.5, 4, 12)
    assert Settings.from_env(**{}).as_env()["SKELDIR_DB_INGEST_POOL_SIZE"] == "3"
