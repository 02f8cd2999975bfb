"""Learned weights on real PostgreSQL: journeys in, versioned Markov and Shapley weights out,
and the recompute then credits every order under eight models, exactly."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from db_helpers import CHAIN_STALE, create_tenant, model_allocations, shopify_delivery
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.learning import learn_weights
from skeldir.domains.attribution.recompute import (
    finish_run,
    recompute_pending,
    rules_in_force,
    start_run,
)
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.reporting.refresh import refresh_tenant

pytestmark = pytest.mark.anyio
NOW = datetime.now(timezone.utc).replace(microsecond=0)
SEARCH = "https://shop.example/?utm_source=google&utm_medium=cpc"
EMAIL = "https://shop.example/?utm_source=newsletter&utm_medium=email"
SOCIAL = "https://shop.example/?utm_source=facebook&utm_medium=social"


async def visit(pool, database, tenant, visitor: str, url: str, hours_ago: float, **extra) -> None:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        key = await touchpoints.tenant_stitch_key(conn, secret_box(database), tenant.tenant_id)
    item = {"id": uuid.uuid4().hex, "visitor_id": visitor, "url": url,
            "occurred_at": (NOW - timedelta(hours=hours_ago)).isoformat(), **extra}
    assert (await touchpoints.store(pool, tenant.tenant_id, [touchpoints.validate(item, 0, key, NOW)], rules_in_force)).new == 1


async def order(pool, database, tenant, order_id: int, visitor: str, total: str) -> None:
    body = json.dumps({"id": order_id, "currency": "USD", "total_price": total,
                       "created_at": (NOW - timedelta(minutes=5)).isoformat(),
                       "note_attributes": [{"name": "skeldir_visitor_id", "value": visitor}]}).encode()
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        key = await touchpoints.tenant_stitch_key(conn, secret_box(database), tenant.tenant_id)
    result = await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id, provider="shopify",
                          delivery=shopify_delivery(body), chain_stale=CHAIN_STALE, stitch_key=key)
    assert result.status == "accepted"


async def run_chain(pool, tenant) -> None:
    job = uuid.uuid4()
    await start_run(pool, tenant.tenant_id, job)
    await finish_run(pool, tenant.tenant_id, job, await recompute_pending(pool, tenant.tenant_id, batch_size=50))
    await refresh_tenant(pool, tenant.tenant_id)


async def test_learned_weights_credit_orders_under_the_data_driven_models(database: Settings, runtime_pool):
    tenant = create_tenant(database)
    pool = runtime_pool
    # Search then email converts; search alone converts; social alone never does.
    for n in range(4):
        await visit(pool, database, tenant, f"a{n}", SEARCH, 30)
        await visit(pool, database, tenant, f"a{n}", EMAIL, 10)
        await order(pool, database, tenant, 5000 + n, f"a{n}", "90.00")
    for n in range(3):
        await visit(pool, database, tenant, f"b{n}", SEARCH, 20)
        await order(pool, database, tenant, 5100 + n, f"b{n}", "10.00")
    for n in range(5):
        await visit(pool, database, tenant, f"c{n}", SOCIAL, 5)
    await run_chain(pool, tenant)  # stitches the orders to their visitors

    learned = {item.model: item for item in await learn_weights(pool, tenant.tenant_id)}
    assert set(learned) == {"markov", "shapley"}
    for item in learned.values():
        assert item.version == 1 and item.paths == 12 and item.conversions == 7
        assert abs(sum(item.weights.values()) - 1) < 1e-9
        assert item.weights.get("organic_social", 0) == 0, "a channel that never converts earns nothing"
        assert item.weights["paid_search"] > item.weights["email"] > 0

    await order(pool, database, tenant, 5200, "a0", "100.00")
    await run_chain(pool, tenant)
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        by_model = await model_allocations(conn, "5200")
        summary = await conn.fetch(
            "SELECT s.model, s.is_balanced FROM allocation_summary s JOIN orders o USING (tenant_id, order_id)"
            " WHERE o.external_order_id = '5200'")
    assert set(by_model) == {"first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
                             "position_based", "markov", "shapley"}
    for model in ("markov", "shapley"):
        row = by_model[model]
        assert row["model_version"] == 1 and sum(row["credits_minor"]) == 10000
        assert dict(zip(row["channels"], row["credits_minor"]))["paid_search"] > 5000
    assert all(r["is_balanced"] for r in summary) and len(summary) == 8

    again = {item.model: item.version for item in await learn_weights(pool, tenant.tenant_id)}
    assert again == {"markov": 2, "shapley": 2}
