"""For the privacy tests: a shop with two customers, a search of every table for a customer's
derived keys, and the report totals an erasure must leave unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg import sql

from shop_helpers import NOW, Shop
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection
from skeldir.domains.ingestion.stitching import CART, CHECKOUT, CUSTOMER, stitch_key

_SEARCHABLE = ("text", "bytea", "jsonb", "json", "character varying", "ARRAY")


@dataclass(frozen=True)
class Customer:
    email: str
    visitor: str
    checkout_token: str
    cart_token: str
    order_id: int

    def derived(self, tenant_key: bytes) -> list[bytes | str]:
        """Every key Skeldir derives from this customer: hashes, visitor id, stitch keys."""
        return [
            stitch_key(tenant_key, CUSTOMER, self.email),
            stitch_key(tenant_key, CHECKOUT, self.checkout_token),
            stitch_key(tenant_key, CART, self.cart_token),
            self.visitor,
            self.email,
        ]


ALICE = Customer("alice@example.com", "visitor-alice", "chk-alice", "cart-alice", 700001)
BOB = Customer("bob@example.com", "visitor-bob", "chk-bob", "cart-bob", 700002)


async def seed_customer(shop: Shop, customer: Customer, *, second_order: int | None = None) -> None:
    """Two visits and an identify item, then an order carrying the customer's tokens."""
    day = NOW - timedelta(days=2)
    await shop.visit(customer.visitor, "https://shop.example/?utm_source=google&utm_medium=cpc",
                     day, cart_token=customer.cart_token)
    await shop.visit(customer.visitor,
                     "https://shop.example/?utm_source=newsletter&utm_medium=email",
                     day + timedelta(hours=1))
    await shop.visit(customer.visitor, None, day + timedelta(hours=2), kind="identify",
                     customer_ref=customer.email, checkout_token=customer.checkout_token)
    for order_id in (customer.order_id, *([second_order] if second_order else [])):
        await shop.order(order_id, "120.00", day + timedelta(hours=3), visitor=customer.visitor,
                         email=customer.email, checkout_token=customer.checkout_token,
                         cart_token=customer.cart_token,
                         landing_site="/?utm_source=google&utm_medium=cpc")


def where_found(settings: Settings, tenant_id, needles: list[bytes | str]) -> list[tuple[str, str]]:
    """(table, column) of every column of every table holding one of `needles` in a row of
    `tenant_id` (or any row, in a table without tenants): bytes equal, or text containing it
    (bytes searched as hex in text columns)."""
    found = []
    with owner_connection(settings) as conn:
        tenant_tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id'"
            " AND table_schema = current_schema()").fetchall()}
        columns = conn.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
            " ORDER BY 1, 2").fetchall()
        for table, column, data_type in columns:
            if data_type not in _SEARCHABLE:
                continue
            for needle in needles:
                scope = tenant_id if table in tenant_tables else None
                if _holds(conn, table, column, data_type, needle, scope):
                    found.append((table, column))
    return found


def _holds(conn: psycopg.Connection, table: str, column: str, data_type: str,
           needle: bytes | str, tenant_id) -> bool:
    scoped = " AND tenant_id = %s" if tenant_id else ""
    target = sql.SQL("SELECT 1 FROM {} WHERE {}" + scoped + " LIMIT 1")
    if data_type == "bytea":
        if not isinstance(needle, bytes):
            return False
        condition = sql.SQL("{} = %s").format(sql.Identifier(column))
        args: tuple = (needle,)
    else:
        text = needle.hex() if isinstance(needle, bytes) else needle
        condition = sql.SQL("strpos({}::text, %s) > 0").format(sql.Identifier(column))
        args = (text,)
    query = target.format(sql.Identifier(table), condition)
    return conn.execute(query, (*args, *([tenant_id] if tenant_id else []))).fetchone() is not None


async def report_totals(shop: Shop) -> dict:
    """Every report's totals: channel credits per model and channel, daily revenue."""
    channels = await shop.fetch(
        "SELECT model, channel, sum(revenue_minor) AS revenue, sum(net_minor) AS net,"
        " sum(orders) AS orders FROM channel_daily GROUP BY 1, 2 ORDER BY 1, 2")
    revenue = await shop.fetch(
        "SELECT day, currency, gross_minor, refunds_minor, net_minor, orders FROM daily_revenue"
        " ORDER BY 1, 2")
    return {"channels": [tuple(r) for r in channels], "revenue": [tuple(r) for r in revenue]}


async def rows_of(shop: Shop, customer: Customer) -> dict:
    """The rows kept about one customer (to check another's erasure leaves them alone)."""
    return {
        "touchpoints": [tuple(r) for r in await shop.fetch(
            "SELECT touchpoint_id, visitor_id, checkout_key, cart_key, customer_key, channel"
            " FROM touchpoints WHERE visitor_id = $1 ORDER BY 1", customer.visitor)],
        "orders": [tuple(r) for r in await shop.fetch(
            "SELECT external_order_id, visitor_id, checkout_key, customer_key, hints::text,"
            " redacted_at FROM orders WHERE external_order_id = $1", str(customer.order_id))],
        "payloads": [r[0] for r in await shop.fetch(
            "SELECT payload::text FROM webhook_events WHERE external_order_id = $1",
            str(customer.order_id))],
    }
