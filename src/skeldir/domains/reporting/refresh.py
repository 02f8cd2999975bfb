"""Bring a tenant's reports up to date for exactly the orders a recompute touched."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.reporting.registry import REFRESHED

_TAKE_DIRTY_SQL = """
DELETE FROM report_dirty_orders
WHERE tenant_id = $1 AND order_id IN (
    SELECT order_id FROM report_dirty_orders WHERE tenant_id = $1
    ORDER BY marked_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING order_id
"""


@dataclass
class RefreshOutcome:
    orders: int = 0
    rows_by_report: dict[str, int] = field(default_factory=dict)


async def refresh_tenant(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, *, batch_size: int = 2000, max_batches: int = 100
) -> RefreshOutcome:
    """Drain the tenant's dirty orders; each batch updates every report in one transaction."""
    outcome = RefreshOutcome()
    for _ in range(max_batches):
        async with tenant_transaction(pool, tenant_id) as conn:
            order_ids = [
                r["order_id"] for r in await conn.fetch(_TAKE_DIRTY_SQL, tenant_id, batch_size)
            ]
            if not order_ids:
                break
            for report in REFRESHED:
                rows = await report.refresh(conn, tenant_id, order_ids)
                outcome.rows_by_report[report.name] = (
                    outcome.rows_by_report.get(report.name, 0) + rows
                )
        outcome.orders += len(order_ids)
    return outcome
