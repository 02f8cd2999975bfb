"""A real running system for end-to-end tests: `skeldir up` as a child process.

Embedded PostgreSQL and Redis by default; with SKELDIR_TEST_ADMIN_URL and
SKELDIR_TEST_BROKER_URL set, a fresh database on that server and that broker (CI).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from databases import new_roles
from skeldir.base.crypto import new_secret_key
from skeldir.deployment.launcher import await_ready_line
from skeldir.deployment.provision import drop, provision, role_url

READY_TIMEOUT = 120.0


def free_port_pair() -> int:
    """A port above 61000 whose successor is free too (the machine is shared)."""
    for _ in range(200):
        port = random.randrange(61000, 64990, 2)
        try:
            for candidate in (port, port + 1):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair above 61000")


@dataclass
class RunningSystem:
    ready: dict
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    process: subprocess.Popen

    @property
    def api_url(self) -> str:
        return self.ready["api_url"]

    @property
    def worker_metrics_url(self) -> str:
        return self.ready["worker_metrics_url"]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cli(self, *args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "skeldir", "--data-dir", str(self.data_dir), *args],
                              env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def start_system(extra_env: dict[str, str] | None = None) -> Iterator[RunningSystem]:
    data_dir = Path(tempfile.mkdtemp(prefix="skt-e2e-"))
    port = free_port_pair()
    env = {**os.environ, "SKELDIR_SWEEP_INTERVAL_SECONDS": "1", "SKELDIR_SWEEP_GRACE_SECONDS": "2",
           "SKELDIR_QUEUE_NAMESPACE": f"skt-{uuid.uuid4().hex[:8]}", **(extra_env or {})}
    admin_url = os.environ.get("SKELDIR_TEST_ADMIN_URL")
    broker_url = os.environ.get("SKELDIR_TEST_BROKER_URL")
    roles = None
    if admin_url and broker_url:
        roles = new_roles()
        provision(admin_url, roles)
        env.update(
            SKELDIR_DATABASE_URL=role_url(admin_url, roles.database, roles.runtime),
            SKELDIR_WORKER_DATABASE_URL=role_url(admin_url, roles.database, roles.worker),
            SKELDIR_OWNER_DATABASE_URL=role_url(admin_url, roles.database, roles.owner),
            SKELDIR_BROKER_URL=broker_url,
            SKELDIR_SECRET_KEY=new_secret_key(),
        )
    log_path = data_dir.parent / f"{data_dir.name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "skeldir", "--data-dir", str(data_dir), "up",
             "--port", str(port), "--worker-metrics-port", str(port + 1)],
            stdout=subprocess.PIPE, stderr=log, env=env, text=True,
        )
    try:
        ready = wait_for_ready(process, log_path)
        yield RunningSystem(ready, env, data_dir, log_path, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        if roles is not None:
            drop(admin_url, roles)
        shutil.rmtree(data_dir, ignore_errors=True)
        log_path.unlink(missing_ok=True)


def wait_for_ready(process: subprocess.Popen, log_path: Path) -> dict:
    ready = await_ready_line(process, READY_TIMEOUT)
    if ready is None:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise AssertionError(f"skeldir up did not print READY (exit {process.poll()}):\n{tail}")
    return ready
