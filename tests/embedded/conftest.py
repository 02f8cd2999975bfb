from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from embedded_helpers import RUNNING_AS_ROOT


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """A directory to hold data directories, reachable by the service user.

    As root, pytest's base temp dir is private (0700), so the service user could not reach a
    data directory inside it; then a traversable but unreadable directory in /tmp is used.
    """
    if not RUNNING_AS_ROOT:
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="skeldir-test-", dir="/tmp"))
    directory.chmod(0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)
