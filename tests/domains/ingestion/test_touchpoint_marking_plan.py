"""A touchpoint post marks the orders it stitches by index: on a shop with a long history, the
query reads the orders its keys name, never every order of the tenant (on real PostgreSQL with
statistics, as a running shop has them)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from db_helpers import create_tenant
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.ingestion import touchpoints

pytestmark = pytest.mark.anyio

ORDERS = 20_000


def scanned_relations(plan: dict) -> list[tuple[str, str]]:
    found = [(plan["Node Type"], plan.get("Relation Name", ""))]
    for child in plan.get("Plans", []):
        found += scanned_relations(child)
    return found


async def test_marking_reads_only_the_orders_the_keys_name(database, runtime_pool):
    tenant = create_tenant(database, "long history")
    with owner_connection(database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (tenant_id, provider, store, external_order_id, has_snapshot,"
            " currency, total_minor, ordered_at, visitor_id)"
            " SELECT %s, 'shopify', '', 'h' || i, true, 'USD', 100,"
            " now() - i * interval '1 second', 'hv' || i FROM generate_series(1, %s) AS i",
            (tenant.tenant_id, ORDERS))
        conn.execute("ANALYZE orders")
        conn.execute("ANALYZE order_attributions")
    since = datetime.now(timezone.utc) - timedelta(days=1)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        explained = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) " + touchpoints._MARK_LATE_SQL,
            tenant.tenant_id, since, ["hv5", "hv77"], [b"\x01"], [], [])
    # The pool's json codec decodes the plan already.
    nodes = scanned_relations(explained[0]["Plan"])
    assert ("Seq Scan", "orders") not in nodes, nodes
