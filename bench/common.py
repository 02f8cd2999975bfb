"""What the benchmarks share: a system to measure, signed Shopify orders, tables of figures.

A benchmark either attaches to a running system (`--api-url --owner-url --tenant --source-url
--secret`) or, by default, starts its own `skeldir up` in a fresh data dir under /tmp on ports
above 61000, creates a tenant and a Shopify source, and stops it all when done. Benchmarks of
the database alone start an embedded PostgreSQL of their own (`embedded_database`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from skeldir.base.config import Settings
from skeldir.base.crypto import new_secret_key
from skeldir.deployment import migrate
from skeldir.deployment.launcher import await_ready_line
from skeldir.deployment.provision import Roles, provision, role_url
from skeldir.embedded.postgres import EmbeddedPostgres

SKELDIR = [sys.executable, "-m", "skeldir"]
READY_TIMEOUT = 120.0
SECRET = "shpss_bench_secret"
# Variables that would point a fresh `skeldir up` at someone else's services.
_FOREIGN_ENV = (
    "SKELDIR_DATA_DIR",
    "SKELDIR_DATABASE_URL",
    "SKELDIR_WORKER_DATABASE_URL",
    "SKELDIR_OWNER_DATABASE_URL",
    "SKELDIR_BROKER_URL",
    "SKELDIR_SECRET_KEY",
    "SKELDIR_PUBLIC_URL",
)


@dataclass
class Target:
    api_url: str
    owner_url: str
    tenant_id: str
    source_url: str
    secret: str
    broker_url: str | None = None
    namespace: str = "skeldir"
    # The `skeldir up` process when this run started it (its children are the system).
    up_pid: int | None = None
    # A collect key of the tenant (touchpoints), when this run created the tenant.
    collect_key: str | None = None
    # When this run started the system: the database roles of the API and of the worker (their
    # backends' CPU is told apart by role).
    runtime_role: str | None = None
    worker_role: str | None = None


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("attach to a running system (default: start one)")
    group.add_argument("--api-url")
    group.add_argument("--owner-url", help="owner-role database URL (reads results)")
    group.add_argument("--tenant", help="tenant id that owns the source")
    group.add_argument("--source-url", help="the source's webhook URL (<api_url>/hooks/<token>)")
    group.add_argument("--secret", help="the source's Shopify signing secret")
    group.add_argument("--broker-url", help="redis+socket:///... or redis://... (queue depth)")
    group.add_argument("--namespace", default="skeldir", help="queue namespace [skeldir]")


@contextlib.contextmanager
def target_from(args: argparse.Namespace) -> Iterator[Target]:
    attach = (args.api_url, args.owner_url, args.tenant, args.source_url, args.secret)
    if any(attach):
        if not all(attach):
            sys.exit("to attach, give all of --api-url --owner-url --tenant --source-url --secret")
        httpx.get(f"{args.api_url}/healthz", timeout=5).raise_for_status()
        yield Target(
            args.api_url,
            args.owner_url,
            args.tenant,
            args.source_url,
            args.secret,
            args.broker_url,
            args.namespace,
        )
        return
    with running_system() as ready:
        tenant = cli(ready["data_dir"], "tenant", "create", "bench shop", "--json")
        source = cli(
            ready["data_dir"],
            "source",
            "add",
            "--tenant",
            tenant["tenant_id"],
            "--provider",
            "shopify",
            "--secret",
            SECRET,
            "--json",
        )
        yield Target(
            ready["api_url"],
            ready["owner_database_url"],
            tenant["tenant_id"],
            source["url"],
            SECRET,
            ready["broker_url"],
            up_pid=ready["pid"],
            collect_key=tenant.get("collect_key"),
            runtime_role=urlsplit(ready["database_url"]).username,
            worker_role=urlsplit(ready["worker_database_url"]).username,
        )


@contextlib.contextmanager
def running_system() -> Iterator[dict]:
    """`skeldir up` in a temp data dir; yields its READY document; SIGTERM on the way out."""
    data_dir = Path(tempfile.mkdtemp(prefix="skeldir-bench-", dir="/tmp"))
    log_path = data_dir.parent / f"{data_dir.name}.log"
    port = free_port_pair()
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    print(f"starting skeldir up in {data_dir} on port {port} (log: {log_path})", flush=True)
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            [
                *SKELDIR,
                "--data-dir",
                str(data_dir),
                "up",
                "--port",
                str(port),
                "--worker-metrics-port",
                str(port + 1),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            text=True,
        )
    failed = True
    try:
        ready = _await_ready(up, log_path)
        yield ready
        failed = False
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
        if failed:
            print(f"skeldir up log kept at {log_path}", file=sys.stderr)
        else:
            log_path.unlink(missing_ok=True)


def _await_ready(up: subprocess.Popen, log_path: Path) -> dict:
    ready = await_ready_line(up, READY_TIMEOUT)
    if ready is None:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"skeldir up did not get ready (exit {up.poll()}):\n{tail}")
    return ready


def free_port_pair() -> int:
    for _ in range(200):
        port = random.randrange(61002, 64990, 2)
        try:
            for candidate in (port, port + 1):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair above 61000")


def cli(data_dir: str, *args: str) -> dict:
    done = subprocess.run(
        [*SKELDIR, "--data-dir", data_dir, *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"skeldir {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def run_order_ids(count: int) -> range:
    """Order ids no earlier run used (the clock in the high digits), below 2**53."""
    base = int(time.time()) * 1_000_000
    return range(base + 1, base + 1 + count)


def order_body(order_id: int) -> bytes:
    return json.dumps(
        {
            "id": order_id,
            "total_price": "10.50",
            "currency": "USD",
            "created_at": "2026-01-25T12:34:56Z",
        }
    ).encode()


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def raw_post(url: str, body: bytes, signature_b64: str) -> bytes:
    """The HTTP/1.1 request bytes of one signed Shopify orders/create delivery (keep-alive)."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nX-Shopify-Topic: orders/create\r\n"
        f"X-Shopify-Hmac-Sha256: {signature_b64}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one prepared HTTP/1.1 request on a keep-alive connection; its status and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    body = await reader.readexactly(int(length.group(1)) if length else 0)
    return int(head[9:12]), body


def redis_client(broker_url: str):
    import redis

    parts = urlsplit(broker_url)
    if parts.scheme.endswith("socket"):
        return redis.Redis(unix_socket_path=unquote(parts.path))
    return redis.Redis.from_url(broker_url)


def queue_depth(client, namespace: str) -> dict[str, int]:
    return {name: client.llen(f"{namespace}.{name}") for name in ("attribution", "reporting")}


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (fraction in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def print_table(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Rows of (what, measured, target, verdict)."""
    header = ("what", "measured", "target", "")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
        if row is header:
            print(line)
    print(line)


def verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def add_rows_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows-json", type=Path, help="also write the table's rows there (for bench/run_all.py)"
    )


def finish(
    args: argparse.Namespace,
    title: str,
    rows: list[tuple[str, str, str, str]],
    figures: dict[str, float] | None = None,
) -> None:
    """Print the table; write its rows as JSON too when asked, with the raw `figures` that
    bench/run_all.py combines across benchmarks (e.g. the batch CPU per order)."""
    print_table(title, rows)
    if args.rows_json:
        args.rows_json.write_text(json.dumps({"rows": rows, "figures": figures or {}}))


@contextlib.contextmanager
def embedded_database(prefix: str) -> Iterator[Settings]:
    """A migrated database on an embedded PostgreSQL of its own in a temp dir under /tmp."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        roles = Roles("skeldir", "skeldir_owner", "skeldir_app", "skeldir_worker")
        provision(server.dsn(), roles)
        settings = Settings(
            data_dir=data_dir,
            secret_key=new_secret_key(),
            owner_database_url=role_url(server.dsn(), "skeldir", "skeldir_owner"),
            database_url=role_url(server.dsn(), "skeldir", "skeldir_app"),
            worker_database_url=role_url(server.dsn(), "skeldir", "skeldir_worker"),
        )
        migrate.upgrade(settings)
        yield settings
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
