"""The demo day and its deliveries, without a system: deterministic for a seed, every platform
present, every request signed so that the project's own provider verifies and parses it into
exactly the amounts the day holds."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest

from skeldir.domains.attribution.channels import classify
from skeldir.domains.ingestion.event import EntryKind
from skeldir.domains.ingestion.provider import VerificationContext
from skeldir.domains.ingestion.touchpoints import Touchpoint, validate
from skeldir.domains.providers.registry import PROVIDERS
from skeldir.domains.spend.rows import SpendRow
from skeldir.domains.spend.rows import validate as validate_spend
from skeldir.operations.demo import campaigns, deliveries, journeys
from skeldir.operations.demo.journeys import Identify, Visit, demo_day, demo_period
from skeldir.operations.demo.payloads import (
    SOURCE_OF_CHECKOUT,
    external_order_id,
    messages,
    touchpoint_item,
)

NOON = datetime(2026, 3, 14, 12, 30, 15, tzinfo=timezone.utc)
JUST_AFTER_MIDNIGHT = datetime(2026, 3, 14, 0, 1, 40, tzinfo=timezone.utc)
SECRETS = deliveries.new_secrets()


@pytest.fixture(scope="module", params=[NOON, JUST_AFTER_MIDNIGHT], ids=["noon", "0h01"])
def now(request) -> datetime:
    return request.param


@pytest.fixture(scope="module")
def day(now) -> journeys.Day:
    return demo_day(seed=7, visitors=200, now=now)


def test_a_seed_gives_the_same_day_and_the_clock_moves_only_its_times():
    first = demo_day(seed=11, visitors=80, now=NOON)
    assert demo_day(seed=11, visitors=80, now=NOON) == first
    assert demo_day(seed=12, visitors=80, now=NOON) != first
    later = demo_day(seed=11, visitors=80, now=NOON + timedelta(hours=7))
    assert [
        (o.checkout, o.lines, o.refunds and o.refunds[0].amount_minor) for o in later.orders
    ] == [(o.checkout, o.lines, o.refunds and o.refunds[0].amount_minor) for o in first.orders]
    assert later.net_by_currency() == first.net_by_currency()


@pytest.mark.parametrize("visitors", [journeys.MIN_VISITORS, 60, 300])
def test_every_checkout_and_several_currencies_are_in_every_day(visitors):
    day = demo_day(seed=visitors, visitors=visitors, now=NOON)
    assert {order.checkout for order in day.orders} == set(journeys.CHECKOUTS)
    assert len(day.net_by_currency()) >= 3
    assert any(order.refunds for order in day.orders)


def test_orders_fall_on_the_current_day_after_their_visitors_visits(day, now):
    midnight = now.replace(hour=0, minute=0, second=0)
    visits: dict[str, list[datetime]] = {}
    for touchpoint in day.touchpoints:
        assert touchpoint.occurred_at <= now
        visits.setdefault(touchpoint.visitor_id, []).append(touchpoint.occurred_at)
    for order in day.orders:
        assert midnight <= order.ordered_at <= now
        assert max(visits[order.visitor_id]) < order.ordered_at
        for refund in order.refunds:
            assert order.ordered_at <= refund.refunded_at <= now
    assert len(day.orders) == len({order.number for order in day.orders})
    assert len(day.touchpoints) == len({t.touchpoint_id for t in day.touchpoints})


def test_every_order_has_a_valid_total_and_no_refund_exceeds_it(day):
    for order in day.orders:
        lines = sum(line.quantity * line.unit_minor for line in order.lines)
        assert order.total_minor == lines + order.shipping_minor > 0
        assert all(line.quantity > 0 and line.unit_minor > 0 for line in order.lines)
        assert all(refund.amount_minor > 0 for refund in order.refunds)
        assert 0 <= order.refunded_minor <= order.total_minor


def test_touchpoints_pass_the_collectors_validation_and_land_in_their_channels(day, now):
    channels = Counter()
    for index, touchpoint in enumerate(day.touchpoints):
        validated = validate(touchpoint_item(touchpoint), index, b"k" * 32, now)
        assert isinstance(validated, Touchpoint), validated
        assert validated.is_visit == isinstance(touchpoint, Visit)
        if isinstance(touchpoint, Visit):
            assert classify(validated.hints) == touchpoint.landing.channel
            channels[touchpoint.landing.channel] += 1
        else:
            assert validated.checkout_key or validated.cart_key
    assert len(channels) == 6


def test_every_request_verifies_and_parses_into_the_days_amounts(day, now):
    booked: Counter[str] = Counter()
    for order in day.orders:
        sent = messages(order)
        assert {m.source for m in sent} == {SOURCE_OF_CHECKOUT[order.checkout]}
        refunds = []
        for message in sent:
            request = deliveries.signed(message, SECRETS[message.source], int(now.timestamp()))
            provider = PROVIDERS[request.source]
            headers = {name.lower(): value for name, value in request.headers.items()}
            provider.verify(
                request.body,
                headers,
                [SECRETS[request.source].encode()],
                VerificationContext(now=now.timestamp()),
            )
            delivery = provider.parse(request.body, headers)
            event = delivery.event
            assert event.external_order_id == external_order_id(order)
            assert event.currency == order.currency
            for entry in event.entries:
                assert entry.currency == order.currency
                if entry.kind == EntryKind.SALE:
                    assert entry.amount_minor == order.total_minor
                    assert entry.occurred_at == order.ordered_at
                else:
                    refunds.append(entry)
            if event.has_order_snapshot:
                assert event.total_minor == order.total_minor
                stitch = delivery.stitch
                assert (stitch.visitor_id == order.visitor_id) == (order.link == "visitor")
                assert order.token in (stitch.checkout_token, stitch.cart_token)
        # WooCommerce repeats earlier refunds in each update: entries count once by id.
        distinct = {entry.external_id: entry.amount_minor for entry in refunds}
        assert sorted(distinct.values()) == sorted(-r.amount_minor for r in order.refunds)
        booked[order.currency] += order.total_minor + sum(distinct.values())
    assert dict(booked) == day.net_by_currency()


def test_paypal_orders_are_relayed_through_the_standard_webhooks_source(day):
    paypal = [order for order in day.orders if order.checkout == "paypal"]
    assert paypal
    for order in paypal:
        assert {message.source for message in messages(order)} == {"standard"}
        assert external_order_id(order).startswith("paypal-")


def test_a_token_linked_order_has_an_identify_item_with_its_token(day):
    identified = {
        (t.visitor_id, t.token_kind, t.token) for t in day.touchpoints if isinstance(t, Identify)
    }
    for order in day.orders:
        linked = (order.visitor_id, order.token_kind, order.token) in identified
        assert linked == (order.link == "token")


def test_the_same_delivery_ids_come_back_for_the_same_order(day):
    order = day.orders[0]
    assert [m.delivery_id for m in messages(order)] == [m.delivery_id for m in messages(order)]
    every_id = [m.delivery_id for o in day.orders for m in messages(o)]
    assert len(every_id) == len(set(every_id))


def test_fresh_signing_secrets_differ_each_time():
    first, second = deliveries.new_secrets(), deliveries.new_secrets()
    assert set(first) == {"shopify", "stripe", "woocommerce", "paypal", "standard"}
    assert all(first[name] != second[name] for name in first)


# --- the period: 90 days, returning customers, ad spend -------------------------------------


@pytest.fixture(scope="module")
def period() -> journeys.Day:
    return demo_period(seed=5, visitors=40, now=NOON)


def test_the_period_spreads_orders_over_every_one_of_its_90_days(period):
    first = (NOON - timedelta(days=89)).date()
    days = Counter(order.ordered_at.date() for order in period.orders)
    assert sorted(days) == [first + timedelta(days=n) for n in range(90)]
    assert all(order.ordered_at <= NOON for order in period.orders)
    assert [o.number for o in period.orders] == list(range(1001, 1001 + len(period.orders)))
    assert len(period.touchpoints) == len({t.touchpoint_id for t in period.touchpoints})
    assert demo_period(seed=5, visitors=40, now=NOON) == period


def test_the_clock_only_cuts_the_current_day_and_moves_times():
    earlier = demo_period(seed=5, visitors=40, now=NOON, days=5)
    later = demo_period(seed=5, visitors=40, now=NOON + timedelta(hours=3), days=5)

    def drawn(order: journeys.Order) -> tuple:
        return (order.number, order.key, order.checkout, order.currency, order.lines,
                order.customer_ref, order.ordered_at)

    assert [drawn(o) for o in later.orders if o.ordered_at <= NOON] == [
        drawn(o) for o in earlier.orders]
    assert len(later.orders) > len(earlier.orders)
    assert [t for t in later.touchpoints if t.occurred_at <= NOON] == list(earlier.touchpoints)
    # Earlier days' spend is fixed; today's is what was spent by then.
    before_today = [row for row in earlier.spend if row["date"] != NOON.date().isoformat()]
    assert before_today == [row for row in later.spend if row["date"] != NOON.date().isoformat()]


def test_returning_customers_reuse_the_email_checkout_and_currency_of_an_earlier_order(period):
    first_orders: dict[str, journeys.Order] = {}
    for order in sorted(period.orders, key=lambda o: o.ordered_at):
        earlier = first_orders.get(order.customer_ref)
        assert order.returning == (earlier is not None)
        if earlier is None:
            first_orders[order.customer_ref] = order
        else:
            assert earlier.ordered_at.date() < order.ordered_at.date()
            assert (order.checkout, order.currency) == (earlier.checkout, earlier.currency)
    returning = sum(order.returning for order in period.orders)
    assert 0.1 < returning / len(period.orders) < 0.35


def test_every_ad_has_one_valid_spend_row_a_day_with_a_weekly_pattern(period):
    rows = [validate_spend(row, index) for index, row in enumerate(period.spend)]
    assert all(isinstance(row, SpendRow) for row in rows), rows
    assert {row.platform for row in rows} == {"meta", "google_ads", "tiktok"}
    assert Counter(row.ad_id for row in rows) == {ad.ad_id: 90 for ad in campaigns.ADS}
    assert len({row.key for row in rows}) == len(rows)
    by_weekday = Counter()
    for row in rows:
        by_weekday[row.day.weekday()] += row.spend_minor
    # Weekdays outspend the weekend in every week on average, despite the noise.
    assert min(by_weekday[d] for d in range(5)) > max(by_weekday[5], by_weekday[6])
    # The current day has spent only its share so far (noon: about half a day).
    today = [row.spend_minor for row in rows if row.day == NOON.date()]
    yesterday = [row.spend_minor for row in rows if row.day == NOON.date() - timedelta(days=1)]
    assert sum(today) < 0.8 * sum(yesterday)


def test_ad_clicks_carry_the_campaign_ad_set_and_ad_ids_and_the_platform_click_id(period):
    ads = {ad.ad_id: ad for ad in campaigns.ADS}
    seen_platforms = set()
    for touchpoint in period.touchpoints:
        if not isinstance(touchpoint, Visit):
            continue
        query = dict(parse_qsl(urlsplit(touchpoint.landing.url).query))
        if "utm_id" not in query:
            assert touchpoint.landing.channel not in ("paid_social",)
            continue
        ad = ads[query[campaigns.AD_URL_PARAMS["ad"]]]
        assert query["utm_id"] == ad.campaign_id
        assert query[campaigns.AD_URL_PARAMS["adset"]] == ad.adset_id
        assert query["utm_campaign"] == ad.campaign_name
        assert ad.click_id in query
        assert touchpoint.landing.channel == ad.channel
        seen_platforms.add(ad.platform)
    assert seen_platforms == {"meta", "google_ads", "tiktok"}


def test_a_periods_requests_verify_and_carry_the_customers_email():
    period = demo_period(seed=3, visitors=20, now=NOON, days=3)
    for order in period.orders:
        for message in messages(order):
            request = deliveries.signed(message, SECRETS[message.source], int(NOON.timestamp()))
            headers = {name.lower(): value for name, value in request.headers.items()}
            delivery = PROVIDERS[request.source].parse(request.body, headers)
            if delivery.event.has_order_snapshot:
                assert delivery.stitch.customer_ref == order.customer_ref
