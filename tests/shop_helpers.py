"""A test shop on real PostgreSQL: one tenant, the events its shop and collector send, and its
chain run by hand."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from db_helpers import CHAIN_STALE, create_tenant, shopify_delivery

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import RecomputeOutcome, recompute_pending
from skeldir.domains.attribution.tenant_attribution import rules_in_force
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.reporting.refresh import refresh_tenant

NOW = datetime.now(timezone.utc).replace(microsecond=0)


class Shop:
    """One tenant, the events its shop and collector send, and its chain run by hand."""

    def __init__(self, database: Settings, pool) -> None:
        self.database = database
        self.pool = pool
        self.tenant = create_tenant(database)
        self.tenant_id = self.tenant.tenant_id

    async def stitch_key(self) -> bytes:
        async with tenant_transaction(self.pool, self.tenant_id) as conn:
            return await touchpoints.tenant_stitch_key(conn, secret_box(self.database),
                                                      self.tenant_id)

    async def visit(self, visitor: str, url: str | None, at: datetime,
                    touchpoint_id: str | None = None, **extra) -> touchpoints.Stored:
        item = {"id": touchpoint_id or uuid.uuid4().hex, "visitor_id": visitor,
                "occurred_at": at.isoformat(), **({"url": url} if url else {}), **extra}
        valid = touchpoints.validate(item, 0, await self.stitch_key(), NOW)
        assert isinstance(valid, touchpoints.Touchpoint), valid
        return await touchpoints.store(self.pool, self.tenant_id, [valid], rules_in_force)

    async def order(self, order_id: int, total: str, at: datetime, *, visitor: str | None = None,
                    currency: str = "USD", topic: str = "orders/create", **extra) -> None:
        body = {"id": order_id, "currency": currency, "total_price": total,
                "created_at": at.isoformat(), **extra}
        if visitor:
            body["note_attributes"] = [{"name": "skeldir_visitor_id", "value": visitor}]
        result = await ingest(self.pool, tenant_id=self.tenant_id, source_id=self.tenant.source_id,
                              provider="shopify",
                              delivery=shopify_delivery(json.dumps(body).encode(), topic),
                              chain_stale=CHAIN_STALE, stitch_key=await self.stitch_key())
        assert result.status == "accepted", result

    async def recompute(self, batch_size: int = 50) -> RecomputeOutcome:
        job = uuid.uuid4()
        await start_run(self.pool, self.tenant_id, job)
        outcome = await recompute_pending(self.pool, self.tenant_id, batch_size=batch_size)
        await finish_run(self.pool, self.tenant_id, job, outcome)
        return outcome

    async def run_chain(self) -> None:
        await self.recompute()
        await refresh_tenant(self.pool, self.tenant_id)

    async def fetch(self, sql: str, *args):
        async with tenant_transaction(self.pool, self.tenant_id) as conn:
            return await conn.fetch(sql, *args)

    async def fetchval(self, sql: str, *args):
        async with tenant_transaction(self.pool, self.tenant_id) as conn:
            return await conn.fetchval(sql, *args)

    async def credited_channels(self, external_order_id: str) -> list[str]:
        rows = await self.fetch(
            "SELECT a.channels FROM order_attributions a JOIN orders o USING (tenant_id, order_id)"
            " WHERE o.external_order_id = $1", external_order_id)
        return rows[0]["channels"]
