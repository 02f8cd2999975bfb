"""Per-tenant limit on long operations (exports, re-parses) in one API process.

A long operation holds a database connection for seconds, and an export holds its file until
the client has read it: a tenant runs at most `long_operations_per_tenant` at once, and one
more is refused with 429 and Retry-After at once rather than queued.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException

from skeldir.base.observability import metrics

RETRY_AFTER_SECONDS = 5


class TenantOperationSlots:
    def __init__(self, per_tenant: int) -> None:
        self.per_tenant = max(1, per_tenant)
        self._busy: dict[uuid.UUID, int] = {}

    def take(self, tenant_id: uuid.UUID, kind: str) -> None:
        """Take a slot (give it back with `give_back`), or raise a 429 when none is free."""
        busy = self._busy.get(tenant_id, 0)
        if busy >= self.per_tenant:
            metrics.RATE_LIMITED.labels(kind=kind).inc()
            raise HTTPException(
                429,
                f"this tenant already runs {busy} long operations (exports, re-parses);"
                " retry after the Retry-After seconds",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._busy[tenant_id] = busy + 1

    def give_back(self, tenant_id: uuid.UUID) -> None:
        busy = self._busy.get(tenant_id, 0) - 1
        if busy > 0:
            self._busy[tenant_id] = busy
        else:
            self._busy.pop(tenant_id, None)

    @contextmanager
    def slot(self, tenant_id: uuid.UUID, kind: str) -> Iterator[None]:
        self.take(tenant_id, kind)
        try:
            yield
        finally:
            self.give_back(tenant_id)

    def __len__(self) -> int:
        return len(self._busy)
