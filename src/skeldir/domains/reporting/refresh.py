"""Bring a tenant's reports up to date for exactly the orders a recompute touched."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.reporting.registry import REFRESHED

# The take is materialized: evaluated once. As a subquery the planner may run it again for
# each row, and each run skips the rows this very statement has already deleted, so one
# transaction could take every dirty order of the tenant (ties in marked_at are common).
_TAKE_DIRTY_SQL = """
WITH taken AS MATERIALIZED (
    SELECT order_id FROM report_dirty_orders WHERE tenant_id = $1
    ORDER BY marked_at LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM report_dirty_orders d USING taken t
WHERE d.tenant_id = $1 AND d.order_id = t.order_id
RETURNING d.order_id
"""


@dataclass
class RefreshOutcome:
    orders: int = 0
    rows_by_report: dict[str, int] = field(default_factory=dict)
    # True when the batch limit stopped the refresh with dirty orders left.
    more_pending: bool = False


async def refresh_tenant(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    *,
    batch_size: int = 2000,
    max_batches: int = 100,
    max_seconds: float | None = None,
) -> RefreshOutcome:
    """Drain the tenant's dirty orders; each batch updates every report in one transaction.
    Stops with `more_pending` after `max_batches` batches or `max_seconds` (checked after each
    full batch)."""
    started = time.monotonic()
    outcome = RefreshOutcome(more_pending=True)
    order_ids: list[uuid.UUID] = []
    for _ in range(max_batches):
        if (
            len(order_ids) == batch_size
            and max_seconds is not None
            and time.monotonic() - started >= max_seconds
        ):
            break
        async with tenant_transaction(pool, tenant_id) as conn:
            order_ids = [
                r["order_id"] for r in await conn.fetch(_TAKE_DIRTY_SQL, tenant_id, batch_size)
            ]
            if not order_ids:
                outcome.more_pending = False
                break
            for report in REFRESHED:
                rows = await report.refresh(conn, tenant_id, order_ids)
                outcome.rows_by_report[report.name] = (
                    outcome.rows_by_report.get(report.name, 0) + rows
                )
        outcome.orders += len(order_ids)
    return outcome
