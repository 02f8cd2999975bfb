"""Waiting for a system of real processes: a bounded poll that fails with a diagnostic."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(what: str, check: Callable[[], T], timeout: float, diagnostics: Callable[[], str],
         interval: float = 0.1) -> T:
    """`check()` once it is truthy; else fail after `timeout` with its last value and logs."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:.0f}s; "
                                 f"last observation: {last!r}\n{diagnostics()}")
        time.sleep(interval)
