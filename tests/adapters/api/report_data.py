"""A shop's attributed orders for the report and export tests, built through the real ingest,
touchpoint collection and recompute: paths over several channels, two currencies, a refund; and
a second tenant with one order of its own."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from db_helpers import CHAIN_STALE, TenantUnderTest, create_tenant, shopify_delivery
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_worker_pool, tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.attribution.tenant_attribution import rules_in_force
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.reporting.refresh import refresh_tenant

WINDOW = {"from": "2026-01-01", "to": "2026-01-31"}
ORDER_DAYS = ("2026-01-10", "2026-01-11", "2026-01-12", "2026-01-13")
SEARCH = "https://shop.example/?utm_source=google&utm_medium=cpc"
EMAIL = "https://shop.example/?utm_source=newsletter&utm_medium=email"
SOCIAL = "https://shop.example/?utm_source=facebook&utm_medium=social"
PATHS = ([SEARCH], [SEARCH, EMAIL], [SOCIAL, SEARCH, EMAIL], [EMAIL, SOCIAL])
ORDERS = 14
REFUNDED_ORDER, REFUND_CENTS = 1, 300


@dataclass(frozen=True)
class ReportData:
    shop: TenantUnderTest
    other: TenantUnderTest
    net_cents: dict[str, int]  # the shop's net revenue per currency


def build_report_data(database: Settings) -> ReportData:
    return asyncio.run(_build(database))


def _cents(order: int) -> int:
    return 1000 + 101 * order


def _currency(order: int) -> str:
    return "EUR" if order % 5 == 0 else "USD"


async def _build(database: Settings) -> ReportData:
    pool = await create_worker_pool(database, max_size=4)
    try:
        shop, other = create_tenant(database, "reports"), create_tenant(database, "other")
        for order in range(ORDERS):
            await _order_with_path(database, pool, shop, order, PATHS[order % len(PATHS)])
        ordered = _ordered_at(REFUNDED_ORDER)
        await _refund(pool, shop, REFUNDED_ORDER, REFUND_CENTS, ordered + timedelta(hours=3))
        await _order_with_path(database, pool, other, 99, [SOCIAL])
        for tenant in (shop, other):
            await _run_chain(pool, tenant)
    finally:
        await pool.close()
    net: dict[str, int] = {}
    for order in range(ORDERS):
        net[_currency(order)] = net.get(_currency(order), 0) + _cents(order)
    net[_currency(REFUNDED_ORDER)] -= REFUND_CENTS
    return ReportData(shop, other, net)


def _ordered_at(order: int) -> datetime:
    day = datetime.fromisoformat(ORDER_DAYS[order % len(ORDER_DAYS)])
    return day.replace(hour=12, tzinfo=timezone.utc)


async def _order_with_path(database, pool, tenant, order: int, path: list[str]) -> None:
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        stitch_key = await touchpoints.tenant_stitch_key(
            conn, secret_box(database), tenant.tenant_id)
    visitor = f"visitor-{order}"
    ordered_at = _ordered_at(order)
    for step, url in enumerate(path):
        at = ordered_at - timedelta(hours=2 * (len(path) - step))
        item = {"id": f"tp-{order}-{step}", "visitor_id": visitor, "url": url,
                "occurred_at": at.isoformat()}
        valid = touchpoints.validate(item, 0, stitch_key, datetime.now(timezone.utc))
        assert isinstance(valid, touchpoints.Touchpoint), valid
        await touchpoints.store(pool, tenant.tenant_id, [valid], rules_in_force)
    cents = _cents(order)
    body = {"id": 5000 + order, "currency": _currency(order),
            "total_price": f"{cents // 100}.{cents % 100:02d}",
            "created_at": ordered_at.isoformat(),
            "note_attributes": [{"name": "skeldir_visitor_id", "value": visitor}]}
    result = await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                          provider="shopify",
                          delivery=shopify_delivery(json.dumps(body).encode(), "orders/create"),
                          chain_stale=CHAIN_STALE, stitch_key=stitch_key)
    assert result.status == "accepted", result


async def _refund(pool, tenant, order: int, cents: int, at: datetime) -> None:
    refund_id = 7000 + order
    body = {"id": refund_id, "order_id": 5000 + order, "created_at": at.isoformat(),
            "transactions": [{"id": refund_id, "kind": "refund", "status": "success",
                              "currency": _currency(order),
                              "amount": f"{cents // 100}.{cents % 100:02d}",
                              "created_at": at.isoformat()}]}
    result = await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                          provider="shopify",
                          delivery=shopify_delivery(json.dumps(body).encode(), "refunds/create"),
                          chain_stale=CHAIN_STALE)
    assert result.status == "accepted", result


async def _run_chain(pool, tenant) -> None:
    job = uuid.uuid4()
    await start_run(pool, tenant.tenant_id, job)
    outcome = await recompute_pending(pool, tenant.tenant_id, batch_size=50)
    await finish_run(pool, tenant.tenant_id, job, outcome)
    await refresh_tenant(pool, tenant.tenant_id)
    assert not outcome.more_pending
