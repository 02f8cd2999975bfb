"""Attribution storage on real PostgreSQL: one packed row per order, the allocation_summary view
over it, the channel_daily report kept incrementally by the recompute (it must equal a rebuild
from the rows), touchpoints classified at collection and reclassified under new rules, and
orders whose path is their own landing page."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import shop_helpers
from db_helpers import CHAIN_STALE, shopify_delivery
from skeldir.base.config import Settings
from skeldir.base.db import SET_TENANT_SQL, owner_connection, tenant_transaction
from skeldir.domains.attribution.channels import classify
from skeldir.domains.attribution.learning import learn_weights
from skeldir.domains.attribution.packing import unpack
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.ingestion.privacy import attribution_hints
from skeldir.domains.reporting import channel_daily
from skeldir.domains.reporting.refresh import refresh_tenant
from skeldir.operations import reattribution, tenant_channel_rules

pytestmark = pytest.mark.anyio
NOW = datetime.now(timezone.utc).replace(microsecond=0)
SEARCH = "https://shop.example/?utm_source=google&utm_medium=cpc"
EMAIL = "https://shop.example/?utm_source=newsletter&utm_medium=email"
SOCIAL = "https://shop.example/?utm_source=facebook&utm_medium=social"
PARTNER = "https://shop.example/?utm_source=partnerx&utm_medium=cpc"
PLAIN = "https://shop.example/products/lamp"
PARTNER_RULES = {
    "version": 1, "extends": "default",
    "rules": [{"channel": "affiliate", "utm_source": {"values": ["partnerx"]}}],
}
RULE_BASED = ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
              "position_based")


# --- helpers --------------------------------------------------------------------------------


class Shop(shop_helpers.Shop):
    """One tenant and the events its shop and collector send, refunds included."""

    def __init__(self, database: Settings, pool) -> None:
        super().__init__(database, pool)
        self._refunds = 0

    async def refund(self, order_id: int, amount: str, at: datetime, currency: str = "USD") -> None:
        self._refunds += 1
        refund_id = order_id * 100 + self._refunds
        body = {"id": refund_id, "order_id": order_id, "created_at": at.isoformat(),
                "transactions": [{"id": refund_id, "kind": "refund", "status": "success",
                                  "currency": currency, "amount": amount,
                                  "created_at": at.isoformat()}]}
        result = await ingest(self.pool, tenant_id=self.tenant_id, source_id=self.tenant.source_id,
                              provider="shopify",
                              delivery=shopify_delivery(json.dumps(body).encode(),
                                                        "refunds/create"),
                              chain_stale=CHAIN_STALE)
        assert result.status == "accepted", result

    async def run_chain(self, batch_size: int = 3) -> None:
        outcome = await self.recompute(batch_size)
        await refresh_tenant(self.pool, self.tenant_id)
        assert not outcome.more_pending
        assert await self.fetchval("SELECT count(*) FROM pending_orders") == 0

    async def mark_all_pending(self) -> None:
        async with tenant_transaction(self.pool, self.tenant_id) as conn:
            await conn.execute(
                "INSERT INTO pending_orders (tenant_id, order_id, order_version)"
                " SELECT tenant_id, order_id, version FROM orders WHERE has_snapshot"
                " ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now()")

    async def stored_channels(self, external_order_id: str) -> dict[str, dict[str, tuple]]:
        """model -> channel -> (net, gross), read through the packed row."""
        row = (await self.fetch(
            "SELECT a.models, a.channels, a.credits FROM order_attributions a"
            " JOIN orders o USING (tenant_id, order_id) WHERE o.external_order_id = $1",
            external_order_id))[0]
        values = unpack(row["credits"], len(row["models"]), len(row["channels"]))
        return {
            model: {channel: (int(values[c, 0, m]), int(values[c, 1, m]))
                    for c, channel in enumerate(row["channels"])}
            for m, model in enumerate(row["models"])
        }


def figures(rows) -> dict[tuple, tuple[int, int, int, int]]:
    """(model, day, currency, channel) -> (revenue, refunds, net, orders), zero rows left out."""
    result = {}
    for r in rows:
        key = (r["model"], r["day"], r["currency"].strip(), r["channel"])
        value = (r["revenue_minor"], r["refunds_minor"], r["net_minor"], r["orders"])
        assert key not in result
        if any(value):
            result[key] = value
    return result


_DAILY_SQL = ("SELECT model, day, currency, channel, revenue_minor, refunds_minor, net_minor,"
              " orders FROM channel_daily WHERE tenant_id = $1")


async def assert_channel_daily_matches_a_rebuild(shop: Shop) -> dict:
    """The incrementally kept channel_daily equals channel_daily.rebuild over the stored rows;
    the rebuild is rolled back, so the incremental report goes on from its own state."""
    async with shop.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(SET_TENANT_SQL, str(shop.tenant_id))
            kept = figures(await conn.fetch(_DAILY_SQL, shop.tenant_id))
            await channel_daily.rebuild(conn, shop.tenant_id)
            rebuilt = figures(await conn.fetch(_DAILY_SQL, shop.tenant_id))
        finally:
            await transaction.rollback()
    assert kept == rebuilt
    assert rebuilt, "the report has rows"
    return kept


async def assert_summary_is_balanced_once_per_order_and_model(shop: Shop) -> list:
    rows = await shop.fetch(
        "SELECT s.order_id, s.model, s.revenue_cents, s.allocated_cents, s.drift_cents,"
        "       s.is_balanced, a.models"
        " FROM allocation_summary s JOIN order_attributions a USING (tenant_id, order_id)")
    ledger = {r["order_id"]: r["total"] for r in await shop.fetch(
        "SELECT order_id, sum(amount_minor)::bigint AS total FROM revenue_entries"
        " GROUP BY order_id")}
    orders = {r["order_id"]: r["models"] for r in await shop.fetch(
        "SELECT order_id, models FROM order_attributions")}
    snapshots = {r["order_id"] for r in await shop.fetch(
        "SELECT order_id FROM orders WHERE has_snapshot")}
    assert set(orders) == snapshots, "one row per order with a snapshot"
    pairs = [(r["order_id"], r["model"]) for r in rows]
    assert len(pairs) == len(set(pairs)), "one summary row per order and model"
    assert set(pairs) == {(o, m) for o, models in orders.items() for m in models}
    for r in rows:
        assert r["is_balanced"] and r["drift_cents"] == 0, dict(r)
        assert r["allocated_cents"] == r["revenue_cents"] == ledger.get(r["order_id"], 0), dict(r)
    return rows


# --- (a) and (b): the incremental report and the summary ------------------------------------


async def test_the_incremental_channel_report_equals_a_rebuild_through_changes(
    database: Settings, worker_pool
):
    shop = Shop(database, worker_pool)
    day = timedelta(days=1)
    hour = timedelta(hours=1)
    # Journeys over three days and two currencies; shared channels, equal times, repeats.
    await shop.visit("v1", SEARCH, NOW - 3 * day)
    await shop.visit("v1", EMAIL, NOW - 2 * day - 5 * hour)
    await shop.visit("v1", SEARCH, NOW - 2 * day - 4 * hour)
    await shop.visit("v2", SOCIAL, NOW - 3 * day)
    await shop.visit("v2", EMAIL, NOW - 3 * day)  # the same instant as the social visit
    await shop.visit("v3", PLAIN, NOW - 30 * hour, referrer="https://www.bing.com/")
    await shop.visit("v4", SEARCH, NOW - 10 * hour)
    await shop.visit("v5", EMAIL, NOW - 50 * hour)
    await shop.order(7001, "100.00", NOW - 2 * day, visitor="v1")
    await shop.order(7002, "33.33", NOW - 2 * day - hour, visitor="v2")
    await shop.order(7003, "10.01", NOW - day, visitor="v3", currency="EUR")
    await shop.order(7004, "250.00", NOW - 2 * hour, visitor="v4",
                     refunds=[{"id": 9401, "created_at": (NOW - hour).isoformat(),
                               "transactions": [{"id": 9402, "kind": "refund",
                                                 "status": "success", "currency": "USD",
                                                 "amount": "50.00"}]}])
    await shop.order(7005, "19.99", NOW - day, visitor="v5")
    await shop.order(7006, "5.00", NOW - day,
                     landing_site="/?utm_source=newsletter&utm_medium=email")  # no visitor
    await shop.order(7007, "77.77", NOW - 3 * hour, visitor="v1")  # a second order of v1
    await shop.refund(7002, "33.33", NOW - 2 * day)  # fully refunded
    await shop.refund(7003, "1.00", NOW - hour, currency="EUR")
    await shop.run_chain()
    first = await assert_channel_daily_matches_a_rebuild(shop)
    await assert_summary_is_balanced_once_per_order_and_model(shop)
    assert {key[0] for key in first} == set(RULE_BASED)
    # The fully refunded order: net nothing, but its sales were credited.
    assert all(net == 0 for model in (await shop.stored_channels("7002")).values()
               for net, _ in model.values())

    # Changes: a refund, late touchpoints (one for an order already attributed), a new order,
    # an updated total, and a refund that arrives before its order.
    await shop.refund(7001, "12.34", NOW - hour)
    late = await shop.visit("v5", SOCIAL, NOW - 51 * hour)
    assert late.orders_marked == 1
    await shop.visit("v4", PARTNER, NOW - 20 * hour)
    await shop.order(7004, "260.00", NOW - 2 * hour, visitor="v4", topic="orders/updated",
                     updated_at=(NOW - hour).isoformat(),
                     refunds=[{"id": 9401, "created_at": (NOW - hour).isoformat(),
                               "transactions": [{"id": 9402, "kind": "refund",
                                                 "status": "success", "currency": "USD",
                                                 "amount": "50.00"}]}])
    await shop.refund(7008, "3.00", NOW - hour)
    await shop.order(7009, "1.00", NOW - hour, visitor="v2")
    await shop.run_chain()
    second = await assert_channel_daily_matches_a_rebuild(shop)
    await assert_summary_is_balanced_once_per_order_and_model(shop)
    assert second != first
    # The late touchpoints re-attributed their orders; the update and the refund count.
    assert (await shop.stored_channels("7005"))["first_touch"] == {
        "organic_social": (1999, 1999), "email": (0, 0)}
    # Under the default rules the partner's cpc visit is paid search too: one channel.
    assert (await shop.stored_channels("7004"))["linear"] == {"paid_search": (21000, 26000)}
    assert (await shop.stored_channels("7001"))["first_touch"] == {
        "paid_search": (10000 - 1234, 10000), "email": (0, 0)}
    assert (await shop.stored_channels("7006"))["linear"] == {"email": (500, 500)}
    assert await shop.fetchval(
        "SELECT count(*) FROM orders WHERE external_order_id = '7008' AND NOT has_snapshot") == 1

    # The refund's order arrives; then everything is recomputed twice (taking back every row),
    # the second time with learned weights, so the rows change their models too.
    await shop.order(7008, "30.00", NOW - 2 * hour, visitor="v3")
    # An order moved to an earlier day (its old day's figures are taken back), and a
    # cancellation (a negative entry that is no refund).
    await shop.order(7007, "77.77", NOW - 2 * day - 3 * hour, visitor="v1",
                     topic="orders/updated", updated_at=(NOW - hour).isoformat())
    await shop.order(7005, "19.99", NOW - day, visitor="v5", topic="orders/cancelled",
                     updated_at=(NOW - hour).isoformat(), cancelled_at=(NOW - hour).isoformat())
    await shop.run_chain(batch_size=2)
    third = await assert_channel_daily_matches_a_rebuild(shop)
    assert third != second
    assert await shop.fetchval(
        "SELECT a.day FROM order_attributions a JOIN orders o USING (tenant_id, order_id)"
        " WHERE o.external_order_id = '7007'") == (NOW - 2 * day - 3 * hour).date()
    assert all(net == 0 for model in (await shop.stored_channels("7005")).values()
               for net, _ in model.values())
    await assert_summary_is_balanced_once_per_order_and_model(shop)
    await shop.mark_all_pending()
    await shop.run_chain(batch_size=4)
    await assert_channel_daily_matches_a_rebuild(shop)
    learned = await learn_weights(worker_pool, shop.tenant_id)
    assert {item.model for item in learned} == {"markov", "shapley"}
    await shop.mark_all_pending()
    await shop.run_chain(batch_size=5)
    final = await assert_channel_daily_matches_a_rebuild(shop)
    rows = await assert_summary_is_balanced_once_per_order_and_model(shop)
    assert {key[0] for key in final} == set(RULE_BASED) | {"markov", "shapley"}
    assert {r["model"] for r in rows} == set(RULE_BASED) | {"markov", "shapley"}
    # A recompute of the unchanged orders changes nothing.
    await shop.mark_all_pending()
    await shop.run_chain(batch_size=100)
    assert await assert_channel_daily_matches_a_rebuild(shop) == final


async def test_the_channel_report_counts_orders_and_refunds_per_channel(
    database: Settings, worker_pool
):
    shop = Shop(database, worker_pool)
    at = NOW - timedelta(hours=5)
    await shop.visit("w1", EMAIL, at - timedelta(hours=2))
    await shop.visit("w2", EMAIL, at - timedelta(hours=3))
    await shop.order(7101, "10.00", at, visitor="w1")
    await shop.order(7102, "20.00", at, visitor="w2")
    await shop.refund(7102, "5.00", at + timedelta(hours=1))
    await shop.run_chain()
    report = await assert_channel_daily_matches_a_rebuild(shop)
    for model in RULE_BASED:
        assert report[(model, at.date(), "USD", "email")] == (3000, 500, 2500, 2)


async def test_an_order_beyond_2_to_the_53_minor_units_is_stored_exactly(
    database: Settings, worker_pool
):
    shop = Shop(database, worker_pool)
    await shop.visit("h1", EMAIL, NOW - timedelta(hours=2))
    await shop.order(7201, "100000000000000.01", NOW - timedelta(hours=1), visitor="h1")
    await shop.run_chain()
    ledger = await shop.fetchval("SELECT sum(amount_minor)::bigint FROM revenue_entries")
    assert ledger == 10**16 + 1
    assert await shop.fetchval("SELECT revenue_minor FROM order_attributions") == ledger
    assert (await shop.stored_channels("7201"))["linear"] == {"email": (ledger, ledger)}


# --- (c): classification at collection, reclassification under new rules -------------------


async def test_new_channel_rules_reclassify_touchpoints_and_re_attribute_orders(
    database: Settings, worker_pool
):
    shop = Shop(database, worker_pool)
    at = NOW - timedelta(hours=6)
    await shop.visit("p1", PARTNER, at - timedelta(hours=3), touchpoint_id="tp-partner")
    await shop.visit("p1", EMAIL, at - timedelta(hours=2), touchpoint_id="tp-email")
    await shop.visit("p1", "https://shop.example/", at - timedelta(hours=1),
                     touchpoint_id="tp-identify", kind="identify", cart_token="cart-1")
    stored = {r["touchpoint_id"]: (r["channel"], r["rules_version"]) for r in await shop.fetch(
        "SELECT touchpoint_id, channel, rules_version FROM touchpoints")}
    assert stored == {"tp-partner": ("paid_search", 0), "tp-email": ("email", 0),
                      "tp-identify": (None, 0)}
    await shop.order(7301, "90.00", at, visitor="p1")
    # An order with no touchpoint: its landing page is classified by the rules in force too.
    await shop.order(7302, "4.00", at, landing_site="/?utm_source=partnerx&utm_medium=cpc")
    await shop.run_chain()
    assert (await shop.stored_channels("7302"))["linear"] == {"paid_search": (400, 400)}
    before = await shop.stored_channels("7301")
    assert set(before["linear"]) == {"paid_search", "email"}
    assert before["first_touch"] == {"paid_search": (9000, 9000), "email": (0, 0)}
    await assert_channel_daily_matches_a_rebuild(shop)

    with owner_connection(database) as conn:
        version = tenant_channel_rules.set_channel_rules(conn, shop.tenant_id, PARTNER_RULES)
        assert (version.version, version.changed) == (1, True)
        conn.commit()
    marked = await reattribution.mark_range_pending(
        shop.pool, shop.tenant_id, (at - timedelta(days=1)).date(), at.date())
    assert marked == 2
    # Not yet reclassified: the recompute does it.
    assert await shop.fetchval(
        "SELECT rules_version FROM touchpoints WHERE touchpoint_id = 'tp-partner'") == 0
    await shop.run_chain()
    stored = {r["touchpoint_id"]: (r["channel"], r["rules_version"]) for r in await shop.fetch(
        "SELECT touchpoint_id, channel, rules_version FROM touchpoints WHERE is_visit")}
    assert stored == {"tp-partner": ("affiliate", 1), "tp-email": ("email", 1)}
    assert (await shop.stored_channels("7302"))["linear"] == {"affiliate": (400, 400)}
    after = await shop.stored_channels("7301")
    assert set(after["linear"]) == {"email", "affiliate"}
    assert after["first_touch"] == {"email": (0, 0), "affiliate": (9000, 9000)}
    assert after["last_touch"] == {"email": (9000, 9000), "affiliate": (0, 0)}
    report = await assert_channel_daily_matches_a_rebuild(shop)
    assert ("first_touch", at.date(), "USD", "paid_search") not in report
    assert report[("first_touch", at.date(), "USD", "affiliate")] == (9400, 0, 9400, 2)
    await assert_summary_is_balanced_once_per_order_and_model(shop)

    # A touchpoint collected now is classified by the rules in force.
    await shop.visit("p2", PARTNER, NOW - timedelta(minutes=5), touchpoint_id="tp-new")
    assert [tuple(r) for r in await shop.fetch(
        "SELECT channel, rules_version FROM touchpoints WHERE touchpoint_id = 'tp-new'")] == [
        ("affiliate", 1)]


async def test_a_late_touchpoint_under_old_rules_is_reclassified_with_the_order(
    database: Settings, worker_pool
):
    """A visitor's touchpoints are reclassified whenever one of them is stale, even when the
    order was marked pending by a new touchpoint rather than by the operator."""
    shop = Shop(database, worker_pool)
    at = NOW - timedelta(hours=6)
    await shop.visit("q1", PARTNER, at - timedelta(hours=3), touchpoint_id="q-old")
    await shop.order(7401, "10.00", at, visitor="q1")
    await shop.run_chain()
    with owner_connection(database) as conn:
        tenant_channel_rules.set_channel_rules(conn, shop.tenant_id, PARTNER_RULES)
    assert (await shop.visit("q1", EMAIL, at - timedelta(hours=1), touchpoint_id="q-new")
            ).orders_marked == 1
    await shop.run_chain()
    assert {tuple(r) for r in await shop.fetch(
        "SELECT touchpoint_id, channel, rules_version FROM touchpoints")} == {
        ("q-old", "affiliate", 1), ("q-new", "email", 1)}
    assert (await shop.stored_channels("7401"))["first_touch"] == {
        "email": (0, 0), "affiliate": (1000, 1000)}
    await assert_channel_daily_matches_a_rebuild(shop)


# --- (d): no touchpoint: the order's own landing page ---------------------------------------


@pytest.mark.parametrize(
    ("landing_site", "referring_site", "expected"),
    [
        ("/?utm_source=newsletter&utm_medium=email", None, "email"),
        ("/products/lamp", "https://www.google.com/search?q=lamp", "organic_search"),
        ("/?utm_source=google&utm_medium=cpc", None, "paid_search"),
    ],
)
async def test_an_order_without_touchpoints_gets_its_landing_pages_channel(
    database: Settings, worker_pool, landing_site, referring_site, expected
):
    hints = attribution_hints(landing_url=landing_site, referrer=referring_site)
    assert classify(hints) == expected
    shop = Shop(database, worker_pool)
    extra = {"landing_site": landing_site}
    if referring_site:
        extra["referring_site"] = referring_site
    at = NOW - timedelta(hours=3)
    await shop.order(7501, "12.34", at, **extra)  # no visitor at all
    # A visitor whose only touchpoint lies outside the 30-day window, and a visitor with none.
    await shop.visit("old", SOCIAL, at - timedelta(days=40))
    await shop.order(7502, "5.00", at, visitor="old", **extra)
    await shop.order(7503, "6.00", at, visitor="nobody", **extra)
    # A visitor seen only after the order, and one seen only through an identify item.
    await shop.visit("later", SOCIAL, at + timedelta(hours=1))
    await shop.order(7504, "7.00", at, visitor="later", **extra)
    await shop.visit("tokens", PLAIN, at - timedelta(hours=1), kind="identify", cart_token="c-9")
    await shop.order(7505, "8.00", at, visitor="tokens", **extra)
    await shop.run_chain()
    for external_id, cents in (("7501", 1234), ("7502", 500), ("7503", 600), ("7504", 700),
                               ("7505", 800)):
        credits = await shop.stored_channels(external_id)
        assert set(credits) == set(RULE_BASED)
        assert all(model == {expected: (cents, cents)} for model in credits.values()), credits
    report = await assert_channel_daily_matches_a_rebuild(shop)
    assert report[("linear", at.date(), "USD", expected)] == (3834, 0, 3834, 5)
    await assert_summary_is_balanced_once_per_order_and_model(shop)


async def test_rules_extending_the_defaults_with_many_channels_stay_usable(
    database: Settings, worker_pool
):
    shop = Shop(database, worker_pool)
    document = {
        "version": 1, "extends": "default",
        "channels": [f"partner_{i:02d}" for i in range(45)],
        "rules": [{"channel": "partner_07", "utm_source": {"values": ["partnerx"]}}],
    }
    with owner_connection(database) as conn:
        assert tenant_channel_rules.set_channel_rules(conn, shop.tenant_id, document).changed
    at = NOW - timedelta(hours=2)
    await shop.visit("m1", PARTNER, at - timedelta(hours=1), touchpoint_id="m-tp")
    await shop.order(7601, "10.00", at, visitor="m1")
    await shop.run_chain()
    assert (await shop.stored_channels("7601"))["linear"] == {"partner_07": (1000, 1000)}
