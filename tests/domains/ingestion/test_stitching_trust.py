"""The public collect key cannot rewrite an order's history: an order is stitched to a visitor
only by claims received before the order, and among claims of one key the first received wins
over later ones whatever time they claim; on real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from db_helpers import CHAIN_STALE, shopify_delivery
from shop_helpers import NOW, Shop

from skeldir.domains.ingestion.inbox import ingest

pytestmark = pytest.mark.anyio
MINUTE = timedelta(minutes=1)
SEARCH = "https://shop.example/?utm_source=google&utm_medium=cpc"
SOCIAL = "https://shop.example/?utm_source=facebook&utm_medium=social"
EMAIL_OF_BUYER = "Buyer@Example.com"
ORDERED_AT = NOW - 60 * MINUTE


async def order_by_email(shop: Shop, order_id: int, **extra) -> None:
    body = {"id": order_id, "currency": "USD", "total_price": "80.00",
            "created_at": ORDERED_AT.isoformat(), "email": EMAIL_OF_BUYER, **extra}
    result = await ingest(shop.pool, tenant_id=shop.tenant_id, source_id=shop.tenant.source_id,
                          provider="shopify",
                          delivery=shopify_delivery(json.dumps(body).encode(), "orders/create"),
                          chain_stale=CHAIN_STALE, stitch_key=await shop.stitch_key())
    assert result.status == "accepted", result


async def claim(shop: Shop, visitor: str, at, **refs) -> None:
    """An identify item, as anyone holding the public collect key can post it."""
    await shop.visit(visitor, None, at, kind="identify", **refs)


async def stitched(shop: Shop, external_order_id: str) -> tuple[str | None, list[str]]:
    row = (await shop.fetch(
        "SELECT a.visitor_id, a.channels FROM order_attributions a"
        " JOIN orders o USING (tenant_id, order_id) WHERE o.external_order_id = $1",
        external_order_id))[0]
    return row["visitor_id"], row["channels"]


async def attacker_rewrites(shop: Shop) -> None:
    """After the order: two visits dated before it and an identify naming the buyer's email."""
    await shop.visit("attacker", SOCIAL, ORDERED_AT - 30 * MINUTE)
    await shop.visit("attacker", SOCIAL, ORDERED_AT - 20 * MINUTE)
    await claim(shop, "attacker", ORDERED_AT - MINUTE, customer_ref=EMAIL_OF_BUYER.lower())


async def test_a_claim_posted_after_the_order_does_not_move_its_credit(database, worker_pool):
    shop = Shop(database, worker_pool)
    await shop.visit("buyer", SEARCH, ORDERED_AT - 40 * MINUTE)
    await claim(shop, "buyer", ORDERED_AT - 35 * MINUTE, customer_ref=EMAIL_OF_BUYER)
    await order_by_email(shop, 9101)
    await shop.run_chain()
    assert await stitched(shop, "9101") == ("buyer", ["paid_search"])

    await attacker_rewrites(shop)
    await shop.run_chain()
    assert await stitched(shop, "9101") == ("buyer", ["paid_search"])


async def test_a_claim_after_an_unlinked_order_does_not_give_it_a_journey(database, worker_pool):
    shop = Shop(database, worker_pool)
    await order_by_email(shop, 9201)
    await shop.run_chain()
    before = await stitched(shop, "9201")
    assert before[0] is None

    await attacker_rewrites(shop)
    await shop.run_chain()
    assert await stitched(shop, "9201") == before


async def test_the_first_claim_of_a_key_wins_over_a_later_one_claiming_a_later_time(
    database, worker_pool
):
    shop = Shop(database, worker_pool)
    await shop.visit("buyer", SEARCH, ORDERED_AT - 40 * MINUTE)
    await claim(shop, "buyer", ORDERED_AT - 35 * MINUTE, customer_ref=EMAIL_OF_BUYER)
    # Received later, before the order, claiming a time nearer to it.
    await shop.visit("attacker", SOCIAL, ORDERED_AT - 10 * MINUTE)
    await claim(shop, "attacker", ORDERED_AT - 5 * MINUTE, customer_ref=EMAIL_OF_BUYER)
    await order_by_email(shop, 9301)
    await shop.run_chain()
    assert await stitched(shop, "9301") == ("buyer", ["paid_search"])


async def test_a_stronger_key_is_not_overridden_by_a_customer_reference(database, worker_pool):
    shop = Shop(database, worker_pool)
    await shop.visit("buyer", SEARCH, ORDERED_AT - 40 * MINUTE)
    await claim(shop, "buyer", ORDERED_AT - 35 * MINUTE, checkout_token="chk-9401")
    await shop.visit("attacker", SOCIAL, ORDERED_AT - 10 * MINUTE)
    await claim(shop, "attacker", ORDERED_AT - 5 * MINUTE, customer_ref=EMAIL_OF_BUYER)
    await order_by_email(shop, 9401, checkout_token="chk-9401")
    await shop.run_chain()
    assert await stitched(shop, "9401") == ("buyer", ["paid_search"])
