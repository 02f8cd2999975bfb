"""Per-process resources of a worker: one event loop and one small pool of the worker role."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
from celery import current_app

from skeldir.base.config import Settings
from skeldir.base.db import create_worker_pool

T = TypeVar("T")


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.pool: asyncpg.Pool = self.loop.run_until_complete(
            create_worker_pool(settings, max_size=4)
        )

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


_runtime: WorkerRuntime | None = None


def runtime() -> WorkerRuntime:
    """This process's runtime; a forked child builds its own (sockets do not survive a fork)."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = WorkerRuntime(current_app.conf.skeldir_settings)
    return _runtime
