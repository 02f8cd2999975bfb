"""Campaign-grain attribution on real PostgreSQL: every model's credits per (channel, platform,
campaign, ad set, ad) kept incrementally in campaign_daily, equal to a rebuild from the rows
through refunds, late touchpoints, new-customer flags that flip, and learned weights; per model,
the rows sum exactly to revenue and to whole orders."""

from __future__ import annotations

from datetime import timedelta

import pytest

import shop_helpers
from shop_helpers import NOW
from skeldir.base.db import SET_TENANT_SQL
from skeldir.domains.attribution.learning import learn_weights
from skeldir.domains.reporting import campaign_daily

pytestmark = pytest.mark.anyio
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
META = ("https://shop.example/?utm_source=facebook&utm_medium=paid_social&utm_campaign=Spring"
        "&utm_id=c1&skd_adset=s1&skd_ad=a1")
META_OTHER_AD = ("https://shop.example/?utm_source=ig&utm_medium=cpc&utm_id=c1&skd_adset=s1"
                 "&skd_ad=a2")
GOOGLE = "https://shop.example/?utm_campaign=Brand%20Exact&gclid=G1"
TIKTOK = "https://shop.example/?ttclid=T1&utm_id=t9&skd_adset=t9s&skd_ad=t9a"
EMAIL = "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=winter"
PLAIN = "https://shop.example/products/lamp"

_ROWS_SQL = """
SELECT model, day, currency, channel, platform, campaign_id, utm_campaign, adset_id, ad_id,
       revenue_minor, refunds_minor, net_minor, orders_micro, new_customers_micro,
       new_customer_net_minor
FROM campaign_daily WHERE tenant_id = $1
"""


def figures(rows) -> dict[tuple, tuple]:
    result = {}
    for r in rows:
        key = tuple(r[f] for f in ("model", "day", "currency", "channel", "platform",
                                   "campaign_id", "utm_campaign", "adset_id", "ad_id"))
        key = (*key[:2], key[2].strip(), *key[3:])
        value = tuple(r[f] for f in ("revenue_minor", "refunds_minor", "net_minor",
                                     "orders_micro", "new_customers_micro",
                                     "new_customer_net_minor"))
        assert key not in result
        if any(value):
            result[key] = value
    return result


async def kept_and_rebuilt(shop) -> tuple[dict, dict]:
    async with shop.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(SET_TENANT_SQL, str(shop.tenant_id))
            kept = figures(await conn.fetch(_ROWS_SQL, shop.tenant_id))
            await campaign_daily.rebuild(conn, shop.tenant_id)
            rebuilt = figures(await conn.fetch(_ROWS_SQL, shop.tenant_id))
        finally:
            await transaction.rollback()
    return kept, rebuilt


async def assert_matches_a_rebuild_and_sums_exactly(shop) -> dict:
    kept, rebuilt = await kept_and_rebuilt(shop)
    assert kept == rebuilt
    assert kept, "the report has rows"
    # Per model and currency: net credits sum to the ledger's net, order units to the orders
    # with sales, new-customer figures to those of the orders flagged new.
    ledger = {
        r["currency"].strip(): r for r in await shop.fetch(
            "SELECT o.currency, sum(e.amount_minor)::bigint AS net,"
            " count(DISTINCT o.order_id) FILTER (WHERE e.kind = 'sale') AS orders,"
            " coalesce(sum(e.amount_minor) FILTER (WHERE a.is_new_customer), 0)::bigint AS new_net,"
            " count(DISTINCT o.order_id) FILTER (WHERE e.kind = 'sale' AND a.is_new_customer)"
            "   AS new_orders"
            " FROM orders o JOIN revenue_entries e USING (tenant_id, order_id)"
            " JOIN order_attributions a USING (tenant_id, order_id)"
            " WHERE o.has_snapshot GROUP BY o.currency")
    }
    models = {key[0] for key in kept}
    for model in models:
        for currency, expected in ledger.items():
            rows = [v for k, v in kept.items() if k[0] == model and k[2] == currency]
            assert sum(v[2] for v in rows) == expected["net"], (model, currency)
            assert sum(v[3] for v in rows) == expected["orders"] * 1_000_000, (model, currency)
            assert sum(v[4] for v in rows) == expected["new_orders"] * 1_000_000
            assert sum(v[5] for v in rows) == expected["new_net"], (model, currency)
    return kept


async def flag_new(shop, flags: dict[str, bool | None]) -> None:
    """Set orders' new-customer flags and mark them pending, as the customers work does."""
    async with shop.pool.acquire() as conn, conn.transaction():
        await conn.execute(SET_TENANT_SQL, str(shop.tenant_id))
        for external_id, flag in flags.items():
            await conn.execute(
                "UPDATE orders SET is_new_customer = $2 WHERE external_order_id = $1",
                external_id, flag)
        await conn.execute(
            "SELECT mark_orders_pending($1, array(SELECT order_id FROM orders"
            " WHERE external_order_id = ANY($2::text[])))", shop.tenant_id, list(flags))


async def run_chain(shop, batch_size: int = 3) -> None:
    outcome = await shop.recompute(batch_size)
    assert not outcome.more_pending


async def test_a_journey_through_two_ads_is_credited_to_its_campaigns_exactly(
    database, worker_pool
):
    shop = shop_helpers.Shop(database, worker_pool)
    at = NOW - 5 * HOUR
    await shop.visit("v1", META, at - 3 * HOUR)
    await shop.visit("v1", GOOGLE, at - 2 * HOUR)
    await shop.visit("v1", EMAIL, at - HOUR)
    await shop.order(8001, "100.00", at, visitor="v1")
    await flag_new(shop, {"8001": True})
    await run_chain(shop)
    kept = await assert_matches_a_rebuild_and_sums_exactly(shop)
    day = at.date()
    meta = ("paid_social", "meta", "c1", "", "s1", "a1")
    google = ("paid_search", "google_ads", "", "Brand Exact", "", "")
    email = ("email", "", "", "winter", "", "")
    assert kept[("linear", day, "USD", *meta)] == (3334, 0, 3334, 333334, 333334, 3334)
    assert kept[("linear", day, "USD", *google)] == (3333, 0, 3333, 333333, 333333, 3333)
    assert kept[("linear", day, "USD", *email)] == (3333, 0, 3333, 333333, 333333, 3333)
    assert kept[("first_touch", day, "USD", *meta)] == (10000, 0, 10000, 10**6, 10**6, 10000)
    assert kept[("position_based", day, "USD", *google)] == (2000, 0, 2000, 200000, 200000, 2000)
    assert ("first_touch", day, "USD", *google) not in kept


async def test_the_incremental_campaign_report_equals_a_rebuild_through_changes(
    database, worker_pool
):
    shop = shop_helpers.Shop(database, worker_pool)
    await shop.visit("v1", META, NOW - 3 * DAY)
    await shop.visit("v1", GOOGLE, NOW - 2 * DAY - 5 * HOUR)
    await shop.visit("v1", META_OTHER_AD, NOW - 2 * DAY - 4 * HOUR)
    await shop.visit("v2", TIKTOK, NOW - 3 * DAY)
    await shop.visit("v2", EMAIL, NOW - 3 * DAY)  # the same instant
    await shop.visit("v3", PLAIN, NOW - 30 * HOUR, referrer="https://www.bing.com/")
    await shop.visit("v4", GOOGLE, NOW - 10 * HOUR)
    await shop.order(7001, "100.00", NOW - 2 * DAY, visitor="v1")
    await shop.order(7002, "33.33", NOW - 2 * DAY - HOUR, visitor="v2")
    await shop.order(7003, "10.01", NOW - DAY, visitor="v3", currency="EUR")
    await shop.order(7004, "250.00", NOW - 2 * HOUR, visitor="v4",
                     refunds=[{"id": 9401, "created_at": (NOW - HOUR).isoformat(),
                               "transactions": [{"id": 9402, "kind": "refund",
                                                 "status": "success", "currency": "USD",
                                                 "amount": "50.00"}]}])
    await shop.order(7006, "5.00", NOW - DAY,
                     landing_site="/?utm_source=facebook&utm_medium=cpc&utm_id=c1")  # no visitor
    await shop.order(7007, "77.77", NOW - 3 * HOUR, visitor="v1")
    await flag_new(shop, {"7001": True, "7002": True, "7004": True, "7007": False})
    await run_chain(shop)
    first = await assert_matches_a_rebuild_and_sums_exactly(shop)
    assert first[("linear", (NOW - DAY).date(), "USD", "paid_social", "meta", "c1", "", "", "")][
        :3] == (500, 0, 500), "an order's own landing page names its campaign"

    # An earlier order of v1's customer arrives: 7001 is no longer new, 7007 stays returning;
    # a late touchpoint, a refund, and orders that flip both ways.
    await flag_new(shop, {"7001": False, "7002": None, "7003": True})
    await shop.visit("v4", TIKTOK, NOW - 20 * HOUR)
    await shop.order(7004, "260.00", NOW - 2 * HOUR, visitor="v4", topic="orders/updated",
                     updated_at=(NOW - HOUR).isoformat(),
                     refunds=[{"id": 9401, "created_at": (NOW - HOUR).isoformat(),
                               "transactions": [{"id": 9402, "kind": "refund",
                                                 "status": "success", "currency": "USD",
                                                 "amount": "50.00"}]}])
    await run_chain(shop, batch_size=2)
    second = await assert_matches_a_rebuild_and_sums_exactly(shop)
    assert second != first

    # Learned weights add the data-driven models; everything is recomputed, flags flipped again.
    learned = await learn_weights(worker_pool, shop.tenant_id)
    assert {item.model for item in learned} == {"markov", "shapley"}
    await flag_new(shop, {"7001": True, "7002": True, "7003": False, "7004": True,
                          "7006": True, "7007": False})
    await run_chain(shop, batch_size=4)
    final = await assert_matches_a_rebuild_and_sums_exactly(shop)
    assert {key[0] for key in final} >= {"markov", "shapley", "linear"}
    # A recompute of unchanged orders changes nothing.
    await flag_new(shop, {"7001": True})
    await run_chain(shop, batch_size=100)
    assert await assert_matches_a_rebuild_and_sums_exactly(shop) == final


async def test_new_platform_rules_classify_stored_touchpoints_again(database, worker_pool):
    from skeldir.base.db import owner_connection
    from skeldir.operations import reattribution, tenant_channel_rules

    shop = shop_helpers.Shop(database, worker_pool)
    at = NOW - 6 * HOUR
    pin = "https://shop.example/?utm_source=pinterest&utm_medium=social&utm_id=p1"
    await shop.visit("p1", pin, at - HOUR, touchpoint_id="tp-pin")
    await shop.order(7301, "90.00", at, visitor="p1")
    # A touchpoint stored before platforms were classified has none yet: read, it is classified.
    await shop.fetch("UPDATE touchpoints SET platform = NULL")
    await run_chain(shop)
    kept = await assert_matches_a_rebuild_and_sums_exactly(shop)
    assert ("linear", at.date(), "USD", "organic_social", "", "p1", "", "", "") in kept
    assert await shop.fetchval("SELECT platform FROM touchpoints") == ""

    with owner_connection(database) as conn:
        tenant_channel_rules.set_channel_rules(conn, shop.tenant_id, {
            "version": 1, "extends": "default",
            "platform_rules": [{"platform": "other", "utm_source": {"names": ["pinterest"]}}]})
        conn.commit()
    await reattribution.mark_range_pending(shop.pool, shop.tenant_id, at.date(), at.date())
    await run_chain(shop)
    kept = await assert_matches_a_rebuild_and_sums_exactly(shop)
    assert kept[("linear", at.date(), "USD", "organic_social", "other", "p1", "", "", "")][
        :3] == (9000, 0, 9000)
    assert ("linear", at.date(), "USD", "organic_social", "", "p1", "", "", "") not in kept
    assert await shop.fetchval("SELECT platform FROM touchpoints") == "other"
