from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import skeldir
from skeldir.embedded.server import SupervisedServer

RUNNING_AS_ROOT = os.geteuid() == 0
SOURCE_ROOT = Path(skeldir.__file__).resolve().parents[1]

SUPERVISOR_SCRIPT = """
import sys, time
from pathlib import Path
from {module} import {name}
{name}(Path(sys.argv[1])).start()
time.sleep(120)
"""


def start_supervisor(server: type[SupervisedServer], data_dir: Path) -> subprocess.Popen[bytes]:
    """Another Python process that starts `server` for `data_dir` and then sleeps."""
    script = SUPERVISOR_SCRIPT.format(module=server.__module__, name=server.__name__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE_ROOT), *sys.path])}
    return subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir)],
        env=env,
        stderr=subprocess.PIPE,
    )


def poll_until(condition: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {describe()}")
        time.sleep(0.05)


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
