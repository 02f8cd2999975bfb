"""One system for the fault tests, started once; each test may stop, kill or restart any part
of it, and gets every part running again afterwards (even when it fails half way)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fault_system import FaultSystem, start_fault_system


@pytest.fixture(scope="session")
def fault_system() -> Iterator[FaultSystem]:
    yield from start_fault_system()


@pytest.fixture
def system(fault_system: FaultSystem) -> Iterator[FaultSystem]:
    fault_system.ensure_running()
    yield fault_system
    fault_system.ensure_running()
