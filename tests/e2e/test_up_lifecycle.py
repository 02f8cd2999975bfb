"""`skeldir up` as an operator uses it: stop with SIGTERM, start again, survive a SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psutil
import pytest
from e2e_system import free_port_pair, wait_for_ready

pytestmark = pytest.mark.e2e


def start_up(data_dir: Path, log) -> tuple[subprocess.Popen, dict]:
    port = free_port_pair()
    process = subprocess.Popen(
        [sys.executable, "-m", "skeldir", "--data-dir", str(data_dir), "up", "--port", str(port),
         "--worker-metrics-port", str(port + 1)],
        stdout=subprocess.PIPE, stderr=log, text=True,
        env={**os.environ, "SKELDIR_DATABASE_URL": "", "SKELDIR_OWNER_DATABASE_URL": "",
             "SKELDIR_BROKER_URL": ""},
    )
    return process, wait_for_ready(process, Path(log.name))


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skeldir", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=60)


def descendants_alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_sigterm_stops_everything_and_a_second_up_keeps_the_data():
    data_dir = Path(tempfile.mkdtemp(prefix="skt-up-"))
    try:
        with open(f"{data_dir}.log", "w") as log:
            first, ready = start_up(data_dir, log)
            children = [p.pid for p in psutil.Process(first.pid).children(recursive=True)]
            assert children, "up runs its services as children"
            created = cli(data_dir, "tenant", "create", "kept", "--json")
            assert created.returncode == 0, created.stderr
            tenant_id = json.loads(created.stdout)["tenant_id"]
            first.send_signal(signal.SIGTERM)
            assert first.wait(60) == 0
            assert descendants_alive(children) == []
            assert not (data_dir / "runtime.json").exists()

            second, ready = start_up(data_dir, log)
            try:
                listed = cli(data_dir, "source", "list", "--tenant", tenant_id, "--json")
                assert listed.returncode == 0, listed.stderr
                assert json.loads(listed.stdout) == {"items": []}
                assert httpx.get(ready["api_url"] + "/healthz", timeout=5).status_code == 200
            finally:
                second.send_signal(signal.SIGINT)
                assert second.wait(60) == 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        Path(f"{data_dir}.log").unlink(missing_ok=True)


def test_a_killed_up_leaves_nothing_the_next_up_cannot_take_over():
    data_dir = Path(tempfile.mkdtemp(prefix="skt-up-"))
    try:
        with open(f"{data_dir}.log", "w") as log:
            first, _ = start_up(data_dir, log)
            children = [p.pid for p in psutil.Process(first.pid).children(recursive=True)]
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            second, ready = start_up(data_dir, log)
            try:
                assert httpx.get(ready["api_url"] + "/healthz", timeout=5).status_code == 200
                assert cli(data_dir, "tenant", "create", "after-kill", "--json").returncode == 0
            finally:
                second.send_signal(signal.SIGTERM)
                assert second.wait(60) == 0
            assert descendants_alive(children) == []
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        Path(f"{data_dir}.log").unlink(missing_ok=True)
