"""Every reason to recompute an order reaches the reports: re-marks made while a batch holds
the order, corrected rates, corrected currencies; on real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from shop_helpers import NOW, Shop

from skeldir.base.config import Settings
from skeldir.base.db import SET_TENANT_SQL, owner_connection, tenant_transaction
from skeldir.domains.attribution import recompute
from skeldir.domains.reporting import daily_revenue as daily_revenue_report
from skeldir.operations import exchange_rates

pytestmark = pytest.mark.anyio
HOUR = timedelta(hours=1)
SEARCH = "https://shop.example/?utm_source=google&utm_medium=cpc"


async def test_a_touchpoint_marked_while_a_batch_holds_its_order_is_recomputed(
    database, worker_pool, monkeypatch
):
    shop = Shop(database, worker_pool)
    await shop.order(8001, "40.00", NOW - HOUR, visitor="v1")
    await shop.run_chain()
    assert await shop.credited_channels("8001") == ["unknown"]
    await shop.order(8001, "40.00", NOW - HOUR, visitor="v1", topic="orders/updated",
                     updated_at=NOW.isoformat(), total_tax="1.00")
    assert await shop.fetchval("SELECT count(*) FROM pending_orders") == 1

    # The batch has read the order's path and written its credits; before it clears the mark,
    # another connection commits a late touchpoint of the order's visitor.
    original_attribute = recompute._attribute
    late = []

    async def attribute_then_collect(*args, **kwargs):
        uncounted = await original_attribute(*args, **kwargs)
        if not late:
            late.append(await shop.visit("v1", SEARCH, NOW - 2 * HOUR))
        return uncounted

    monkeypatch.setattr(recompute, "_attribute", attribute_then_collect)
    async with tenant_transaction(worker_pool, shop.tenant_id) as conn:
        assert await recompute._take_batch(conn, shop.tenant_id, 50) == 1
        await recompute._write_batch(conn, shop.tenant_id)
    assert late[0].orders_marked == 1
    assert await shop.fetchval("SELECT count(*) FROM pending_orders") == 1, (
        "the mark made while the batch held the order must survive the batch")

    monkeypatch.undo()
    await shop.run_chain()
    assert await shop.fetchval("SELECT count(*) FROM pending_orders") == 0
    assert await shop.credited_channels("8001") == ["paid_search"]


async def daily_revenue(shop: Shop) -> dict[tuple, dict]:
    rows = await shop.fetch("SELECT * FROM daily_revenue")
    return {(r["day"], r["currency"].strip()): dict(r) for r in rows}


def load_rate(database: Settings, day, base: str, rate: str) -> dict:
    with owner_connection(database) as conn:
        return exchange_rates.load_rates(conn, [exchange_rates.Rate(day, base, "USD", Decimal(rate))])


async def test_a_corrected_rate_re_attributes_the_orders_stamped_with_the_old_one(
    database, worker_pool
):
    shop = Shop(database, worker_pool)
    at = datetime(2026, 2, 3, 12, tzinfo=timezone.utc)
    await shop.order(8101, "100.00", at, currency="EUR")
    await shop.order(8102, "0.37", at, currency="EUR")
    load_rate(database, at.date(), "EUR", "1.10")
    await shop.run_chain()
    before = (await daily_revenue(shop))[(at.date(), "EUR")]
    assert before["gross_reporting_minor"] == 11000 + 41  # 0.37 * 1.10 = 0.407

    assert load_rate(database, at.date(), "EUR", "1.10")["orders_marked_pending"] == 0
    assert load_rate(database, at.date(), "EUR", "1.2345")["orders_marked_pending"] == 2
    await shop.run_chain()
    after = (await daily_revenue(shop))[(at.date(), "EUR")]
    assert after["gross_reporting_minor"] == 12345 + 46  # 0.37 * 1.2345 = 0.456765
    assert after["net_reporting_minor"] - before["net_reporting_minor"] == (12345 + 46) - (11000 + 41)
    assert (after["gross_minor"], after["orders"]) == (before["gross_minor"], before["orders"])
    stamped = await shop.fetch("SELECT DISTINCT fx_rate FROM order_attributions")
    assert [r["fx_rate"] for r in stamped] == [Decimal("1.2345")]
    assert await shop.fetchval("SELECT count(*) FROM pending_orders") == 0


async def daily_revenue_rebuilt(shop: Shop) -> dict[tuple, dict]:
    """daily_revenue as a rebuild from the ledger computes it (rolled back)."""
    async with shop.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(SET_TENANT_SQL, str(shop.tenant_id))
            await daily_revenue_report.rebuild(conn, shop.tenant_id)
            rows = await conn.fetch("SELECT * FROM daily_revenue")
        finally:
            await transaction.rollback()
    return {(r["day"], r["currency"].strip()): dict(r) for r in rows}


def figures(rows: dict[tuple, dict]) -> dict[tuple, tuple]:
    columns = ("gross_minor", "refunds_minor", "net_minor", "orders", "net_reporting_minor",
               "unconverted_entries")
    return {key: tuple(row[c] for c in columns) for key, row in rows.items()
            if any(row[c] for c in columns)}


@pytest.mark.parametrize("eur_rate", [None, "1"], ids=["unconverted", "same-converted-amount"])
async def test_a_corrected_order_currency_leaves_the_row_that_counted_it(
    database, worker_pool, eur_rate
):
    shop = Shop(database, worker_pool)
    at = datetime(2026, 2, 4 if eur_rate is None else 5, 12, tzinfo=timezone.utc)
    if eur_rate:
        load_rate(database, at.date(), "EUR", eur_rate)
    await shop.order(8201, "10.00", at, updated_at=at.isoformat())
    await shop.run_chain()
    assert figures(await daily_revenue(shop)) == {(at.date(), "USD"): (1000, 0, 1000, 1, 1000, 0)}

    # The sender corrects the order's currency, the same amount.
    await shop.order(8201, "10.00", at, currency="EUR", topic="orders/updated",
                     updated_at=(at + HOUR).isoformat())
    await shop.run_chain()
    kept = figures(await daily_revenue(shop))
    converted = (1000, 0) if eur_rate else (0, 1)
    assert kept == {(at.date(), "EUR"): (1000, 0, 1000, 1, *converted)}
    assert kept == figures(await daily_revenue_rebuilt(shop))
