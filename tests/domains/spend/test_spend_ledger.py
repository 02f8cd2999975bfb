"""The spend ledger on real PostgreSQL: upserts replace a key's figures, row-level security
keeps tenants apart, and reads convert at the day's rate or flag the missing rate."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.spend import ledger
from skeldir.domains.spend.reads import spend_rows, to_reporting_minor
from skeldir.domains.spend.rows import SpendRow, validate

pytestmark = pytest.mark.anyio


def spend(day: str = "2026-12-01", campaign: str = "c1", amount: str = "50.00",
          currency: str = "USD", **extra) -> SpendRow:
    result = validate({"date": day, "platform": "meta", "account_id": "act_1",
                       "campaign_id": campaign, "currency": currency, "spend": amount,
                       "impressions": 100, "clicks": 4, **extra}, 0)
    assert isinstance(result, SpendRow), result
    return result


async def stored(pool, tenant_id) -> list[tuple]:
    async with tenant_transaction(pool, tenant_id) as conn:
        return [tuple(r) for r in await conn.fetch(
            "SELECT day, campaign_id, adset_id, ad_id, spend_minor, impressions, campaign_name"
            " FROM ad_spend ORDER BY day, campaign_id, adset_id, ad_id")]


async def test_a_key_loaded_again_replaces_its_figures(runtime_pool, tenant_factory) -> None:
    tenant = tenant_factory()
    assert await ledger.store(runtime_pool, tenant.tenant_id, [
        spend(), spend(campaign="c2", amount="1.00"),
        spend(adset_id="s1", ad_id="a1", amount="2.00")]) == 3
    # A restatement, with the last of two rows of one key winning.
    assert await ledger.store(runtime_pool, tenant.tenant_id, [
        spend(amount="60.00", campaign_name="Old"),
        spend(amount="61.25", campaign_name="Spring")]) == 1
    assert await stored(runtime_pool, tenant.tenant_id) == [
        (date(2026, 12, 1), "c1", "", "", 6125, 100, "Spring"),
        (date(2026, 12, 1), "c1", "s1", "a1", 200, 100, ""),
        (date(2026, 12, 1), "c2", "", "", 100, 100, ""),
    ]


async def test_tenants_see_only_their_own_spend(runtime_pool, tenant_factory) -> None:
    a, b = tenant_factory("A"), tenant_factory("B")
    await ledger.store(runtime_pool, a.tenant_id, [spend()])
    assert await stored(runtime_pool, b.tenant_id) == []
    async with runtime_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ad_spend") == 0
        with pytest.raises(Exception, match="row-level security"):
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)",
                                   str(b.tenant_id))
                await conn.execute(
                    "INSERT INTO ad_spend (tenant_id, day, platform, account_id, campaign_id,"
                    " currency, spend_minor) VALUES ($1, '2026-12-01', 'meta', 'x', 'y', 'USD', 1)",
                    a.tenant_id)


async def test_a_failing_batch_stores_nothing(runtime_pool, tenant_factory) -> None:
    tenant = tenant_factory()
    too_long = spend()
    object.__setattr__(too_long, "account_id", "x" * 300)  # past the table's own check
    with pytest.raises(Exception):
        await ledger.store(runtime_pool, tenant.tenant_id, [spend(campaign="ok"), too_long])
    assert await stored(runtime_pool, tenant.tenant_id) == []


async def test_reads_convert_at_the_days_rate_and_flag_a_missing_one(
        database, runtime_pool, tenant_factory) -> None:
    tenant = tenant_factory()
    await ledger.store(runtime_pool, tenant.tenant_id, [
        spend(day="2026-12-01", amount="10.00"),
        spend(day="2026-12-01", campaign="eur", currency="EUR", amount="10.01"),
        spend(day="2026-12-02", campaign="eur", currency="EUR", amount="10.00"),
        spend(day="2026-12-02", campaign="jpy", currency="JPY", amount="1000"),
    ])
    with owner_connection(database) as conn:
        conn.execute("INSERT INTO fx_rates (day, base, quote, rate) VALUES"
                     " ('2026-12-01', 'EUR', 'USD', 1.105), ('2026-12-02', 'JPY', 'USD', 0.0067)"
                     " ON CONFLICT DO NOTHING")
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        rows = await spend_rows(conn, date(2026, 12, 1), date(2026, 12, 2), None, 10)
        first = await spend_rows(conn, date(2026, 12, 1), date(2026, 12, 2), None, 2)
        last = first[-1]
        rest = await spend_rows(conn, date(2026, 12, 1), date(2026, 12, 2), (
            last["day"], last["platform"], last["account_id"], last["campaign_id"],
            last["adset_id"], last["ad_id"]), 10)
    got = [(r["day"].day, r["campaign_id"], r["spend_cents"], r["spend_reporting_cents"],
            r["rate_missing"]) for r in rows]
    assert got == [
        (1, "c1", 1000, 1000, False),
        (1, "eur", 1001, 1106, False),  # 1001 * 1.105 = 1106.105
        (2, "eur", 1000, None, True),   # no EUR rate that day: flagged, never 1:1
        (2, "jpy", 1000, 670, False),   # 1000 JPY * 0.0067 = 6.70 USD
    ]
    assert first + rest == rows


def test_conversion_rounds_half_up_across_exponents() -> None:
    assert to_reporting_minor(1, "USD", Decimal("0.5"), "USD") == 1
    assert to_reporting_minor(150, "JPY", Decimal("0.0067"), "USD") == 101  # 100.5 cents
    assert to_reporting_minor(100, "USD", Decimal("150"), "JPY") == 150


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(loads=st.lists(st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]),
                                         st.sampled_from(["2026-12-01", "2026-12-02"]),
                                         st.integers(min_value=0, max_value=10**9)),
                               min_size=1, max_size=6), min_size=1, max_size=4))
async def test_spend_totals_equal_the_last_figures_loaded_per_key(
        runtime_pool, tenant_factory, loads) -> None:
    tenant = tenant_factory()
    expected: dict = {}
    for load in loads:
        rows = [spend(day=day, campaign=c, amount=f"{minor // 100}.{minor % 100:02d}") for c, day, minor in load]
        await ledger.store(runtime_pool, tenant.tenant_id, rows)
        expected.update({(day, c): minor for c, day, minor in load})
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        total = await conn.fetchval("SELECT coalesce(sum(spend_minor), 0) FROM ad_spend")
    assert total == sum(expected.values())


async def test_a_large_batch_is_stored_whole(runtime_pool, tenant_factory) -> None:
    """50,000 rows in one call (its speed is bench/spend_load.py's, never a test's)."""
    tenant = tenant_factory()
    rows = [spend(day=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}", campaign=f"c{i}",
                  adset_id=f"s{i % 50}", ad_id=f"a{i}", amount="1.23") for i in range(50_000)]
    assert await ledger.store(runtime_pool, tenant.tenant_id, rows) == 50_000
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        stored = await conn.fetchrow("SELECT count(*), sum(spend_minor) FROM ad_spend")
    assert tuple(stored) == (50_000, 50_000 * 123)


async def test_replacing_days_removes_what_the_new_rows_lack_in_that_range_only(
        runtime_pool, tenant_factory) -> None:
    tenant = tenant_factory()
    await ledger.store(runtime_pool, tenant.tenant_id, [
        spend("2026-11-30"), spend("2026-12-01"), spend("2026-12-01", campaign="gone"),
        spend("2026-12-02"), spend("2026-12-01", account_id="act_2")])
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        assert await ledger.replace_days(conn, tenant.tenant_id, "meta", "act_1",
                                         date(2026, 12, 1), date(2026, 12, 2),
                                         [spend("2026-12-01", amount="7.00")]) == 1
        with pytest.raises(ValueError, match="outside"):
            await ledger.replace_days(conn, tenant.tenant_id, "meta", "act_1",
                                      date(2026, 12, 1), date(2026, 12, 1), [spend("2026-12-03")])
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        rows = [tuple(r) for r in await conn.fetch(
            "SELECT day::text, account_id, campaign_id, spend_minor FROM ad_spend"
            " ORDER BY day, account_id, campaign_id")]
    assert rows == [("2026-11-30", "act_1", "c1", 5000), ("2026-12-01", "act_1", "c1", 700),
                    ("2026-12-01", "act_2", "c1", 5000)]


async def test_two_replacements_of_one_account_wait_for_each_other(runtime_pool,
                                                                   tenant_factory) -> None:
    """Without the lock the second's DELETE would not see the first's uncommitted rows and
    both would survive: here the first holds its transaction open until the second waits."""
    tenant = tenant_factory()
    day = date(2026, 12, 1)

    async def second() -> None:
        async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
            await ledger.replace_days(conn, tenant.tenant_id, "meta", "act_1", day, day,
                                      [spend(campaign="second")])

    async def waiting_for_a_lock() -> int:
        return await runtime_pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")

    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        await ledger.replace_days(conn, tenant.tenant_id, "meta", "act_1", day, day,
                                  [spend(campaign="first")])
        waiting = asyncio.create_task(second())
        deadline = time.monotonic() + 10
        while not await waiting_for_a_lock():
            assert not waiting.done(), "the second replacement did not wait for the first"
            assert time.monotonic() < deadline, "the second replacement never reached the lock"
            await asyncio.sleep(0.01)
    await waiting
    assert [r[1] for r in await stored(runtime_pool, tenant.tenant_id)] == ["second"]
