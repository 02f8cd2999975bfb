"""The running system every end-to-end test module shares (see e2e_system)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_system import RunningSystem, start_system


@pytest.fixture(scope="module")
def system() -> Iterator[RunningSystem]:
    yield from start_system()
