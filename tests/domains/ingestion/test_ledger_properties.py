"""Random orders, edits, refunds, cancellations, duplicates and shuffled delivery, checked
against an independent recomputation of the ledger and of every report."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db_helpers import create_tenant, ingest_shopify
from skeldir.base import money
from skeldir.base.config import Settings
from skeldir.base.db import create_worker_pool, owner_connection, tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.reporting.refresh import refresh_tenant
from skeldir.operations import exchange_rates

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
CURRENCIES = ("USD", "EUR", "JPY")
# Known rates into USD on some days only: other orders must stay unconverted, never 1:1.
RATES = {(date(2026, 3, 1), "EUR"): Decimal("1.0850"), (date(2026, 3, 2), "JPY"): Decimal("0.0067")}


@dataclass
class Order:
    order_id: int
    currency: str
    day_offset: int
    totals: list[int]  # successive snapshots' totals in minor units; the last is newest
    refunds: list[tuple[int, int]] = field(default_factory=list)  # (amount, day offset)
    cancelled: bool = False

    @property
    def ordered_at(self) -> datetime:
        return BASE + timedelta(days=self.day_offset)


def amount_text(minor: int, currency: str) -> str:
    return money.format_minor(minor, currency)


@st.composite
def orders(draw) -> list[Order]:
    count = draw(st.integers(1, 6))
    result = []
    for n in range(count):
        currency = draw(st.sampled_from(CURRENCIES))
        totals = draw(st.lists(st.integers(1, 500_000), min_size=1, max_size=3))
        order = Order(10_000 + n, currency, draw(st.integers(0, 2)), totals)
        remaining = totals[-1]
        for _ in range(draw(st.integers(0, 2))):
            if remaining <= 0:
                break
            amount = draw(st.integers(1, remaining))
            remaining -= amount
            order.refunds.append((amount, order.day_offset + draw(st.integers(0, 3))))
        order.cancelled = draw(st.booleans()) and draw(st.booleans())
        result.append(order)
    return result


def deliveries(order: Order) -> list[tuple[str, str, bytes]]:
    """(event id, topic, body) of every event the shop would send for the order."""
    events = []
    for version, total in enumerate(order.totals):
        body = {"id": order.order_id, "currency": order.currency,
                "total_price": amount_text(total, order.currency),
                "created_at": order.ordered_at.isoformat(),
                "updated_at": (order.ordered_at + timedelta(minutes=version)).isoformat()}
        events.append((f"o{order.order_id}v{version}", "orders/create" if version == 0 else "orders/updated",
                       json.dumps(body).encode()))
    for index, (amount, day) in enumerate(order.refunds):
        when = (BASE + timedelta(days=day, hours=1)).isoformat()
        refund = {"id": order.order_id * 10 + index, "order_id": order.order_id, "created_at": when,
                  "transactions": [{"id": order.order_id * 100 + index, "kind": "refund",
                                    "status": "success", "currency": order.currency,
                                    "amount": amount_text(amount, order.currency), "created_at": when}]}
        events.append((f"r{order.order_id}-{index}", "refunds/create", json.dumps(refund).encode()))
    if order.cancelled:
        body = {"id": order.order_id, "currency": order.currency,
                "total_price": amount_text(order.totals[-1], order.currency),
                "created_at": order.ordered_at.isoformat(),
                "updated_at": (order.ordered_at + timedelta(minutes=10)).isoformat(),
                "cancelled_at": (order.ordered_at + timedelta(minutes=10)).isoformat()}
        events.append((f"c{order.order_id}", "orders/cancelled", json.dumps(body).encode()))
    return events


def expected_entries(order: Order) -> list[tuple[date, str, str, int]]:
    """(day, currency, kind, amount) of the ledger the shop's events describe."""
    entries = [(order.ordered_at.date(), order.currency, "sale", order.totals[-1])]
    entries += [((BASE + timedelta(days=day)).date(), order.currency, "refund", -amount)
                for amount, day in order.refunds]
    if order.cancelled:
        rest = order.totals[-1] - sum(amount for amount, _ in order.refunds)
        entries.append((order.ordered_at.date(), order.currency, "cancellation", -rest))
    return entries


def factor(order: Order) -> Decimal | None:
    if order.currency == "USD":
        return Decimal(1)
    rate = RATES.get((order.ordered_at.date(), order.currency))
    return rate.scaleb(2 - money.exponent(order.currency)) if rate else None


def expected_daily(generated: list[Order]) -> dict[tuple[date, str], dict]:
    days: dict[tuple[date, str], dict] = {}
    for order in generated:
        f = factor(order)
        for day, currency, kind, amount in expected_entries(order):
            row = days.setdefault((day, currency), {"sale": 0, "refund": 0, "cancellation": 0,
                                                    "orders": 0, "net_reporting": 0, "unconverted": 0})
            row[kind] += amount
            row["orders"] += kind == "sale"
            if f is None:
                row["unconverted"] += 1
            else:
                row["net_reporting"] += int((amount * f).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return days


async def scenario(database: Settings, generated: list[Order], seed: int) -> None:
    tenant = create_tenant(database)
    events = [event for order in generated for event in deliveries(order)]
    shuffler = random.Random(seed)
    events += shuffler.sample(events, k=len(events) // 2)  # duplicate deliveries
    shuffler.shuffle(events)
    pool = await create_worker_pool(database, max_size=4)
    try:
        for event_id, topic, body in events:
            result = await ingest_shopify(pool, tenant, body, topic=topic, event_id=event_id)
            assert result.status in ("accepted", "duplicate")
        await start_run(pool, tenant.tenant_id, job := uuid.uuid4())
        await finish_run(pool, tenant.tenant_id, job,
                         await recompute_pending(pool, tenant.tenant_id, batch_size=4))
        await refresh_tenant(pool, tenant.tenant_id)

        async with tenant_transaction(pool, tenant.tenant_id) as conn:
            ledger = {r["external_order_id"]: r["net"] for r in await conn.fetch(
                "SELECT o.external_order_id, sum(e.amount_minor)::bigint AS net FROM orders o"
                " JOIN revenue_entries e USING (tenant_id, order_id) GROUP BY 1")}
            summary = await conn.fetch(
                "SELECT o.external_order_id, s.model, s.revenue_cents, s.allocated_cents, s.is_balanced"
                " FROM allocation_summary s JOIN orders o USING (tenant_id, order_id)")
            daily = {(r["day"], r["currency"]): r for r in await conn.fetch("SELECT * FROM daily_revenue")}
            pending = await conn.fetchval("SELECT count(*) FROM pending_orders")
    finally:
        await pool.close()

    expected_net = {str(o.order_id): sum(a for *_, a in expected_entries(o)) for o in generated}
    assert ledger == expected_net
    assert pending == 0
    assert len(summary) == 6 * len(generated)
    for row in summary:
        assert row["revenue_cents"] == row["allocated_cents"] == expected_net[row["external_order_id"]]
        assert row["is_balanced"]
    expected = expected_daily(generated)
    assert set(daily) == set(expected)
    for key, row in expected.items():
        got = daily[key]
        assert (got["gross_minor"], got["refunds_minor"], got["cancellations_minor"]) == (
            row["sale"], row["refund"], row["cancellation"]), key
        assert got["net_minor"] == row["sale"] + row["refund"] + row["cancellation"]
        assert got["orders"] == row["orders"] and got["unconverted_entries"] == row["unconverted"]
        assert got["net_reporting_minor"] == row["net_reporting"], key


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=orders(), seed=st.integers(0, 2**32))
def test_ledger_and_reports_match_an_independent_recomputation(database: Settings, generated, seed):
    with owner_connection(database) as conn:
        exchange_rates.load_rates(
            conn,
            [exchange_rates.Rate(day, base, "USD", rate) for (day, base), rate in RATES.items()],
        )
    asyncio.run(scenario(database, generated, seed))
