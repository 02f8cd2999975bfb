"""Readers that never read: sockets that ask for a large export and then take no byte of it.

A system of its own with small pools (4 connections for reads, 2 for webhooks), so a handful of
sockets is enough to exhaust them if anything holds a connection while it waits on a client.
Another tenant's webhooks, its reports and /healthz must still answer promptly; no session may
sit idle in a transaction; and once the send timeout passes the stalled exports free their slots.
"""

from __future__ import annotations

import select
import socket
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from fault_system import (
    WEBHOOK_PATH,
    FaultSystem,
    order_body,
    poll,
    signed_headers,
    start_fault_system,
)

pytestmark = pytest.mark.faults

READ_POOL = 4
EXPORTS_PER_TENANT = 2
SEND_TIMEOUT = 4.0
SLOW_READERS = READ_POOL + 2
# A CSV well above what the kernel buffers of one connection hold (a few MB on loopback).
DAYS, CHANNELS = 3000, 20
EXPORT_PATH = "/api/exports/channel-performance.csv?from=2018-01-01&to=2026-12-31"
PROMPT = 5.0


@pytest.fixture(scope="module")
def system() -> Iterator[FaultSystem]:
    yield from start_fault_system(
        db_pool_size=READ_POOL,
        db_ingest_pool_size=2,
        db_acquire_timeout_seconds=2.0,
        long_operations_per_tenant=EXPORTS_PER_TENANT,
        export_send_timeout_seconds=SEND_TIMEOUT,
    )


def fill_channel_daily(system: FaultSystem, tenant_id: uuid.UUID) -> None:
    with system.owner() as conn:
        conn.execute(
            "INSERT INTO channel_daily (tenant_id, model, day, currency, channel, revenue_minor,"
            " refunds_minor, net_minor, orders)"
            " SELECT %s, 'linear', date '2018-01-01' + d, 'USD', 'channel-' || c || repeat('x', 150),"
            "        100000 + d, 0, 100000 + d, 1"
            " FROM generate_series(0, %s - 1) d, generate_series(1, %s) c",
            (tenant_id, DAYS, CHANNELS),
        )


def stalled_reader(system: FaultSystem, api_key: str) -> socket.socket:
    """A connection that asks for the export with a tiny receive window and reads nothing."""
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", system.port))
    reader.sendall(
        f"GET {EXPORT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api_key}\r\n\r\n".encode()
    )
    return reader


def status_line(reader: socket.socket) -> int | None:
    """The response's status, peeked (nothing is taken from the socket), once it has come."""
    if not select.select([reader], [], [], 0)[0]:
        return None
    head = reader.recv(16, socket.MSG_PEEK)
    return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") and len(head) >= 12 else None


def runtime_sessions_idle_in_transaction(system: FaultSystem) -> int:
    with psycopg.connect(system.postgres.dsn(), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE usename = %s AND state LIKE 'idle in transaction%%'",
            (system.settings.runtime_role,),
        ).fetchone()[0]


def test_stalled_export_readers_starve_no_one(system):
    reader_tenant = system.create_tenant("reads a lot")
    shop = system.create_tenant("sells")
    fill_channel_daily(system, reader_tenant.tenant_id)

    readers = [stalled_reader(system, reader_tenant.api_key) for _ in range(SLOW_READERS)]
    try:
        statuses = poll(
            "every stalled reader has its status line",
            lambda: (lambda seen: seen if None not in seen else None)(
                [status_line(r) for r in readers]
            ),
            30,
            system.logs,
        )
        # Each export beyond the tenant's share is refused at once, not queued on the pool.
        assert sorted(statuses) == [200] * EXPORTS_PER_TENANT + [429] * (
            SLOW_READERS - EXPORTS_PER_TENANT
        ), statuses

        with httpx.Client(base_url=system.api_url, timeout=PROMPT) as client:
            body = order_body(7_100_001)
            delivered = client.post(WEBHOOK_PATH, content=body,
                                    headers=signed_headers(shop, body, "slow-readers-1"))
            assert delivered.status_code == 200, delivered.text
            assert delivered.json()["status"] == "accepted"
            assert client.get("/healthz").status_code == 200
            status = client.get("/api/status",
                                headers={"Authorization": f"Bearer {shop.api_key}"})
            assert status.status_code == 200, status.text

        # The accepted exports were read before their first byte was sent: no transaction
        # waits on these sockets.
        poll("no runtime session idle in a transaction",
             lambda: runtime_sessions_idle_in_transaction(system) == 0, PROMPT, system.logs)
    finally:
        for reader in readers:
            reader.close()


def test_a_stalled_export_frees_its_slot_after_the_send_timeout(system):
    reader_tenant = system.create_tenant("stalls")
    fill_channel_daily(system, reader_tenant.tenant_id)
    readers = [stalled_reader(system, reader_tenant.api_key) for _ in range(EXPORTS_PER_TENANT)]
    try:
        poll("both stalled exports started",
             lambda: [status_line(r) for r in readers] == [200] * EXPORTS_PER_TENANT,
             30, system.logs)
        headers = {"Authorization": f"Bearer {reader_tenant.api_key}"}
        with httpx.Client(base_url=system.api_url, timeout=30) as client:
            assert client.get(EXPORT_PATH, headers=headers).status_code == 429
            # Bounded by the send timeout, plus the time to send what the buffers take.
            finished = poll(
                "a new export once the stalled ones timed out",
                lambda: (lambda r: r if r.status_code == 200 else None)(
                    client.get(EXPORT_PATH, headers=headers)
                ),
                SEND_TIMEOUT * 5,
                system.logs,
                interval=0.5,
            )
        lines = finished.text.splitlines()
        assert len(lines) == DAYS * CHANNELS + 1
        assert finished.headers["content-length"] == str(len(finished.content))
    finally:
        for reader in readers:
            reader.close()
