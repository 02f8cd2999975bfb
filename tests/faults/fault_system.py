"""A running system whose parts start and stop one at a time, so a test can fail any one of them.

Its own embedded PostgreSQL and Redis (never the machine's: the tests stop and restart them),
migrated with fresh roles; the API and a worker with beat as child processes, each appending to
its own log file. Every diagnostic carries the tails of those logs.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import psycopg

from databases import new_roles
from e2e.e2e_system import free_port_pair
from polling import poll

from skeldir.base.config import Settings
from skeldir.base.crypto import new_secret_key, secret_box
from skeldir.deployment import migrate
from skeldir.deployment.provision import provision, role_url
from skeldir.embedded import process
from skeldir.embedded.postgres import EmbeddedPostgres
from skeldir.embedded.redis import EmbeddedRedis
from skeldir.operations import tenants


SHOPIFY_SECRET = "shpss_fault_secret"
WEBHOOK_PATH = "/api/webhooks/shopify"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
LOG_TAIL_BYTES = 3000

# Loaded before any fork: a child must not dlopen between fork and exec.
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_the_tests() -> None:
    # Runs in the child before exec: a test run killed outright takes the API and worker along.
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


@dataclass(frozen=True)
class Tenant:
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    api_key: str
    webhook_key: str


class FaultSystem:
    def __init__(self, services_dir: Path, app_dir: Path, **overrides: object) -> None:
        self.postgres = EmbeddedPostgres(services_dir)
        self.redis = EmbeddedRedis(services_dir)
        self.app_dir = app_dir
        self.api: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.api_log = app_dir / "api.log"
        self.worker_log = app_dir / "worker.log"
        self.port = free_port_pair()
        self.settings: Settings | None = None
        self.overrides = overrides

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port + 1}/metrics"

    def start(self) -> None:
        self.postgres.start()
        self.redis.start()
        roles = new_roles()
        provision(self.postgres.dsn(), roles)
        self.settings = Settings(
            data_dir=self.app_dir,
            database_url=role_url(self.postgres.dsn(), roles.database, roles.runtime),
            worker_database_url=role_url(self.postgres.dsn(), roles.database, roles.worker),
            owner_database_url=role_url(self.postgres.dsn(), roles.database, roles.owner),
            broker_url=self.redis.url,
            secret_key=new_secret_key(),
            public_url=self.api_url,
            queue_namespace=f"skt-faults-{uuid.uuid4().hex[:8]}",
            # Many small batches, so a recompute of a few thousand orders is long enough to
            # be caught half done.
            recompute_batch_size=200,
            sweep_interval_seconds=1.0,
            sweep_grace_seconds=2.0,
            chain_stale_seconds=5.0,
            worker_metrics_port=self.port + 1,
            # A tenant's first learned weights re-attribute its orders with two more models
            # just after they converged: a check of the converged state would race it.
            learn_min_conversions=0,
        )
        self.settings = replace(self.settings, **self.overrides)
        migrate.upgrade(self.settings)
        self.start_api()
        self.start_worker()

    # --- the API and the worker ---------------------------------------------------------------

    def _spawn(self, args: list[str], log_path: Path) -> subprocess.Popen:
        env = {**os.environ, **self.settings.as_env()}
        with open(log_path, "ab") as log:
            log.write(f"\n=== {' '.join(args)} at {time.strftime('%H:%M:%S')} ===\n".encode())
            log.flush()
            return subprocess.Popen(
                [sys.executable, "-m", "skeldir", *args], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_the_tests,  # noqa: PLW1509 (one async-signal-safe call)
            )

    def start_api(self) -> None:
        self.api = self._spawn(["api", "--host", "127.0.0.1", "--port", str(self.port)],
                               self.api_log)
        self._wait_healthy("API", self.api, f"{self.api_url}/healthz")

    def start_worker(self) -> None:
        self.worker = self._spawn(["worker", "--beat"], self.worker_log)
        self._wait_healthy("worker", self.worker, f"http://127.0.0.1:{self.port + 1}/healthz")

    def _wait_healthy(self, name: str, child: subprocess.Popen, url: str) -> None:
        def healthy() -> bool:
            if child.poll() is not None:
                raise AssertionError(f"the {name} exited with {child.returncode}\n{self.logs()}")
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        poll(f"the {name} answers {url}", healthy, START_TIMEOUT, self.logs)

    def kill_worker(self) -> None:
        """SIGKILL the worker (beat, a thread of it, goes with it) and wait until it is gone."""
        worker, self.worker = self.worker, None
        worker.kill()
        worker.wait(STOP_TIMEOUT)

    def stop_worker(self) -> None:
        if self.worker is not None:
            process.stop(self.worker, [signal.SIGTERM, signal.SIGKILL], STOP_TIMEOUT)
            self.worker = None

    def stop_api(self) -> None:
        if self.api is not None:
            process.stop(self.api, [signal.SIGTERM, signal.SIGKILL], STOP_TIMEOUT)
            self.api = None

    def ensure_running(self) -> None:
        """Bring back whatever a test stopped (or left stopped by failing)."""
        self.postgres.start()
        self.redis.start()
        if self.api is None or self.api.poll() is not None:
            self.start_api()
        if self.worker is None or self.worker.poll() is not None:
            self.start_worker()

    def close(self) -> None:
        for stop in (self.stop_worker, self.stop_api, self.redis.stop, self.postgres.stop):
            with contextlib.suppress(Exception):
                stop()

    def logs(self) -> str:
        """The last errors of the API and the worker, then the tail of every process log."""
        parts = []
        for name, path in (("API", self.api_log), ("worker", self.worker_log)):
            errors = _error_lines(path)
            if errors:
                parts.append(f"--- last errors in the {name} log ---\n" + "\n".join(errors))
        for name, path in (("API", self.api_log), ("worker", self.worker_log),
                           ("PostgreSQL", self.postgres.log_path), ("Redis", self.redis.log_path)):
            parts.append(f"--- {name} log ({path}) ---\n{_tail(path)}")
        return "\n".join(parts)

    # --- data -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def owner(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection as the owner (BYPASSRLS): what the tests read to check."""
        with psycopg.connect(self.settings.owner_database_url, autocommit=True) as conn:
            yield conn

    def count(self, table: str, tenant_id: uuid.UUID, where: str = "true") -> int:
        with self.owner() as conn:
            return conn.execute(
                f"SELECT count(*) FROM {table} WHERE tenant_id = %s AND {where}", (tenant_id,)
            ).fetchone()[0]

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Until no tenant has an order to attribute or a report to refresh (global metrics
        then move only for what a test does next)."""
        def backlog() -> tuple[int, int]:
            with self.owner() as conn:
                return conn.execute("SELECT (SELECT count(*) FROM pending_orders),"
                                    " (SELECT count(*) FROM report_dirty_orders)").fetchone()

        poll("no backlog in any tenant", lambda: backlog() == (0, 0), timeout,
             lambda: f"pending, dirty: {backlog()}\n{self.logs()}")

    def create_tenant(self, name: str) -> Tenant:
        box = secret_box(self.settings)
        with psycopg.connect(self.settings.owner_database_url) as conn:
            tenant = tenants.create_tenant(conn, box, name)
            source = tenants.add_source(conn, box, tenant_id=tenant.tenant_id, provider="shopify",
                                        secret=SHOPIFY_SECRET, public_url=self.api_url)
        return Tenant(tenant.tenant_id, source.source_id, tenant.api_key, tenant.webhook_key)


def log_entries(path: Path, message: str) -> list[dict]:
    """The JSON lines of a process log whose message is `message`."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{message}"' in line:
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                if entry.get("message") == message:
                    found.append(entry)
    return found


def _error_lines(path: Path, count: int = 5) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    # The JSON lines are compact ("level":"ERROR").
    errors = [line for line in lines if '"level":"ERROR"' in line or line.startswith("Traceback")]
    # A traceback's end names the exception: keep the start and the end of a long line.
    return [line if len(line) <= LOG_TAIL_BYTES else f"{line[:500]} ... {line[-2000:]}"
            for line in errors[-count:]]


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"


def start_fault_system(**overrides: object) -> Iterator[FaultSystem]:
    """A started system; `overrides` replace fields of its Settings."""
    # mkdtemp under /tmp: as root, the services' own user must reach their data dir.
    services_dir = Path(tempfile.mkdtemp(prefix="skt-faults-"))
    app_dir = Path(tempfile.mkdtemp(prefix="skt-faults-app-"))
    system = FaultSystem(services_dir, app_dir, **overrides)
    try:
        system.start()
        yield system
    finally:
        system.close()
        shutil.rmtree(services_dir, ignore_errors=True)
        shutil.rmtree(app_dir, ignore_errors=True)


# --- signed Shopify deliveries ----------------------------------------------------------------


def order_body(order_id: int, total: str = "10.50", created_at: str = "2026-01-25T12:34:56Z",
               **extra: object) -> bytes:
    return json.dumps({"id": order_id, "total_price": total, "currency": "USD",
                       "created_at": created_at, **extra}).encode()


def signed_headers(tenant: Tenant, body: bytes, event_id: str,
                   topic: str = "orders/create") -> dict[str, str]:
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Event-Id": event_id, "X-Skeldir-Tenant-Key": tenant.webhook_key}


def dedupe_key(event_id: str, topic: str = "orders/create") -> str:
    """How the Shopify provider keys a delivery that names its event id."""
    return f"event:{event_id}:{topic}"

