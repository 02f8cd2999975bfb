"""Reads sent to a streaming replica (hot standby) of a real primary: they equal the primary's
once it has caught up, and a replica that lags past the bound or stops answering is left out,
reads falling back to the primary, until it catches up again."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from db_helpers import create_tenant
from fastapi.testclient import TestClient
from streaming_replica import EmbeddedStandby
from test_hostile_input import bearer, post_order

from databases import new_roles
from skeldir.adapters.app import create_app
from skeldir.base.config import Settings
from skeldir.base.crypto import new_secret_key
from skeldir.deployment import migrate
from skeldir.deployment.provision import provision, role_url
from skeldir.embedded.postgres import EmbeddedPostgres


class Pair:
    def __init__(self, directory: Path) -> None:
        self.primary = EmbeddedPostgres(directory / "primary")
        self.primary.start()
        roles = new_roles()
        provision(self.primary.dsn(), roles)
        self.settings = Settings(
            data_dir=directory / "skeldir",
            owner_database_url=role_url(self.primary.dsn(), roles.database, roles.owner),
            database_url=role_url(self.primary.dsn(), roles.database, roles.runtime),
            worker_database_url=role_url(self.primary.dsn(), roles.database, roles.worker),
            secret_key=new_secret_key(),
            broker_url="memory://",
        )
        migrate.upgrade(self.settings)
        self.standby = EmbeddedStandby(directory / "standby", self.primary)
        self.standby.start()
        self.read_url = role_url(self.standby.dsn(), roles.database, roles.runtime)

    def on_standby(self, sql: str) -> None:
        with psycopg.connect(self.standby.dsn(), autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    # mkdtemp under /tmp: as root the servers' own user must be able to reach it.
    directory = Path(tempfile.mkdtemp(prefix="skt-replica-"))
    directory.chmod(0o711)
    started = Pair(directory)
    yield started
    started.stop()
    shutil.rmtree(directory, ignore_errors=True)


def poll(condition, what: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s; last: {value!r}"
        time.sleep(0.05)


def order_ids(client, tenant) -> set[str]:
    response = client.get("/api/events", params={"limit": 200}, headers=bearer(tenant.api_key))
    assert response.status_code == 200, response.text
    return {item["external_order_id"] for item in response.json()["items"]}


def replica_status(client, tenant) -> dict:
    response = client.get("/api/status", headers=bearer(tenant.api_key))
    assert response.status_code == 200, response.text
    return response.json()["read_replica"]


def send_order(client, tenant, order_id: int) -> str:
    body = json.dumps({"id": order_id, "total_price": "10.50", "currency": "USD",
                       "created_at": "2026-01-25T12:34:56Z"}).encode()
    response = post_order(client, tenant, body)
    assert response.status_code == 200, response.text
    return str(order_id)


def test_reads_come_from_the_replica_and_equal_the_primarys_once_it_has_caught_up(pair):
    tenant = create_tenant(pair.settings)
    settings = replace(pair.settings, read_database_url=pair.read_url,
                       read_replica_max_lag_seconds=60.0, read_replica_check_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        first = send_order(client, tenant, 1)
        poll(lambda: first in order_ids(client, tenant), "the replica shows the first event")
        assert replica_status(client, tenant)["serving_reads"] is True
        # Replay paused: what the primary stores now is not on the replica, and reads do not
        # show it, so they come from the replica.
        pair.on_standby("SELECT pg_wal_replay_pause()")
        try:
            second = send_order(client, tenant, 2)
            assert second not in order_ids(client, tenant)
        finally:
            pair.on_standby("SELECT pg_wal_replay_resume()")
        poll(lambda: second in order_ids(client, tenant), "the replica shows the second event")
    with TestClient(create_app(pair.settings)) as primary_only:
        assert order_ids(primary_only, tenant) == {first, second}
        assert replica_status(primary_only, tenant) == {"configured": False,
                                                        "serving_reads": False}


def test_a_lagging_replica_is_left_out_until_it_catches_up(pair):
    tenant = create_tenant(pair.settings)
    settings = replace(pair.settings, read_database_url=pair.read_url,
                       read_replica_max_lag_seconds=0.3, read_replica_check_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        poll(lambda: replica_status(client, tenant)["serving_reads"], "the replica serves")
        pair.on_standby("SELECT pg_wal_replay_pause()")
        try:
            event = send_order(client, tenant, 3)
            left_out = poll(lambda: (s := replica_status(client, tenant))["serving_reads"] is False
                            and s, "the lagging replica is left out")
            assert left_out["reason"] == "lagging beyond the bound"
            assert left_out["lag_bytes"] > 0 and left_out["lag_seconds"] > 0.3
            # Reads fall back to the primary, which has the event.
            assert event in order_ids(client, tenant)
        finally:
            pair.on_standby("SELECT pg_wal_replay_resume()")
        # It serves again once within the bound, perhaps a few bytes behind; then catches up.
        poll(lambda: replica_status(client, tenant)["serving_reads"], "the replica serves again")
        poll(lambda: replica_status(client, tenant)["lag_bytes"] == 0, "the replica catches up")
        assert event in order_ids(client, tenant)


def test_a_replica_that_stops_answering_is_left_out_and_taken_back(pair):
    tenant = create_tenant(pair.settings)
    settings = replace(pair.settings, read_database_url=pair.read_url,
                       read_replica_max_lag_seconds=5.0, read_replica_check_seconds=0.05,
                       db_acquire_timeout_seconds=1.0)
    with TestClient(create_app(settings)) as client:
        poll(lambda: replica_status(client, tenant)["serving_reads"], "the replica serves")
        pair.standby.stop()
        try:
            gone = poll(lambda: (s := replica_status(client, tenant))["serving_reads"] is False
                        and s, "the stopped replica is left out")
            assert gone["reason"].startswith("unreachable")
            event = send_order(client, tenant, 4)
            assert event in order_ids(client, tenant)
        finally:
            pair.standby.start()
        poll(lambda: replica_status(client, tenant)["serving_reads"], "the restarted replica serves")
        assert event in order_ids(client, tenant)


def test_an_api_starts_while_its_replica_is_down(pair):
    tenant = create_tenant(pair.settings)
    pair.standby.stop()
    try:
        settings = replace(pair.settings, read_database_url=pair.read_url,
                           read_replica_check_seconds=0.05, db_acquire_timeout_seconds=1.0)
        with TestClient(create_app(settings)) as client:
            assert replica_status(client, tenant)["serving_reads"] is False
            assert order_ids(client, tenant) == set()
    finally:
        pair.standby.start()
