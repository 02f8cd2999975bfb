"""Erase everything derived from one person, keeping the money.

What goes: the touchpoints of every visitor stitched to them (and those carrying their stitch
keys), the visitor and customer links and keyed hashes on their orders, their orders' landing
hints, the kept payload copies of their orders' events, and dead letters that name them.
What stays: orders, ledger entries and each order's channel credits, which are not personal.
Their orders are marked `redacted_at`: the recompute leaves their credits as attributed (they
could not be computed again without the journey) and a trigger keeps the links empty should
the platform send the order again. So every report total is unchanged.

Runs in one tenant transaction as the runtime role; running it again finds nothing more.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg

from skeldir.base.crypto import SecretBox
from skeldir.domains.ingestion.stitching import CUSTOMER, stitch_key
from skeldir.domains.privacy.subjects import Subject

# What replaces a kept payload copy: the event row (ids, dedupe key) stays.
REDACTED_PAYLOAD = {"redacted": True}
# Rounds of following orders to visitors and back, at most.
MAX_ROUNDS = 10
# Dead letters are read (decrypted) this many at a time.
DEAD_LETTER_PAGE = 500
_EMAILISH = re.compile(r"[^\s\"'<>,;:]+@[^\s\"'<>,;:]+")

# One indexed lookup per way an order names its subject (a UNION, not an OR, so each branch
# uses its own index: customer key, visitor id, order id, attributed visitor); a shop
# redaction takes every order whose events came through the source.
_SUBJECT_ORDERS_SQL = """
WITH subject_orders AS (
    SELECT order_id FROM orders WHERE tenant_id = $1 AND customer_key = ANY($2::bytea[])
    UNION
    SELECT order_id FROM orders WHERE tenant_id = $1 AND visitor_id = ANY($3::text[])
    UNION
    SELECT o.order_id FROM unnest($4::text[], $5::text[]) AS r(provider, external_order_id)
    JOIN orders o ON o.tenant_id = $1 AND o.provider = r.provider
                 AND o.external_order_id = r.external_order_id
    UNION
    SELECT order_id FROM order_attributions WHERE tenant_id = $1 AND visitor_id = ANY($3::text[])
    UNION
    SELECT o.order_id FROM webhook_events e
    JOIN orders o ON o.tenant_id = $1 AND o.provider = e.provider
                 AND o.external_order_id = e.external_order_id
    WHERE $6::uuid IS NOT NULL AND e.tenant_id = $1 AND e.source_id = $6)
SELECT o.order_id, o.provider, o.external_order_id, o.visitor_id, o.checkout_key, o.cart_key,
       o.customer_key, a.visitor_id AS attributed_visitor
FROM orders o
LEFT JOIN order_attributions a ON a.tenant_id = o.tenant_id AND a.order_id = o.order_id
WHERE o.tenant_id = $1 AND o.order_id IN (SELECT order_id FROM subject_orders)
"""

_LINKED_VISITORS_SQL = """
SELECT DISTINCT visitor_id FROM touchpoints
WHERE tenant_id = $1 AND (customer_key = ANY($2::bytea[]) OR checkout_key = ANY($3::bytea[])
                          OR cart_key = ANY($4::bytea[]))
"""


@dataclass
class Reach:
    """What a subject reaches: their orders (by order id), visitors and keys."""

    customer_keys: list[bytes]
    visitors: set[str]
    orders: dict[uuid.UUID, asyncpg.Record]
    checkout_keys: list[bytes]
    cart_keys: list[bytes]


async def subject_reach(conn: asyncpg.Connection, tenant_id: uuid.UUID, subject: Subject) -> Reach:
    """The subject's orders and visitors: orders by their keys, visitor ids or order ids (or
    source); then the customers and visitors those orders name (their own id, the visitor they were
    stitched to, visitors whose touchpoints carry their tokens), whose orders follow, until
    nothing new is found."""
    keys = list(subject.customer_keys)
    visitors = set(subject.visitor_ids)
    orders: dict[uuid.UUID, asyncpg.Record] = {}
    source = uuid.UUID(subject.source_id) if subject.source_id else None
    checkout_keys: list[bytes] = []
    cart_keys: list[bytes] = []
    # Until nothing new is found: a visitor found through an order's token may have stitched
    # other orders, whose tokens may name other visitors (bounded: a person's devices).
    for _ in range(MAX_ROUNDS):
        known = (len(orders), len(visitors), len(keys))
        rows = await conn.fetch(
            _SUBJECT_ORDERS_SQL,
            tenant_id,
            keys,
            sorted(visitors),
            [o.provider for o in subject.orders],
            [o.external_order_id for o in subject.orders],
            source,
        )
        orders.update((row["order_id"], row) for row in rows)
        # An order found by a visitor or an order id names its customer: their other orders
        # and what is keyed by them (the customers table) go too.
        keys += [r["customer_key"] for r in rows if r["customer_key"] and r["customer_key"]
                 not in keys]
        checkout_keys = [r["checkout_key"] for r in orders.values() if r["checkout_key"]]
        cart_keys = [r["cart_key"] for r in orders.values() if r["cart_key"]]
        for row in orders.values():
            visitors.update(v for v in (row["visitor_id"], row["attributed_visitor"]) if v)
        linked = await conn.fetch(_LINKED_VISITORS_SQL, tenant_id, keys, checkout_keys, cart_keys)
        visitors.update(row["visitor_id"] for row in linked)
        if (len(orders), len(visitors), len(keys)) == known:
            break
    return Reach(keys, visitors, orders, checkout_keys, cart_keys)


@dataclass
class ErasureCounts:
    orders_redacted: int = 0
    touchpoints_deleted: int = 0
    payload_copies_redacted: int = 0
    dead_letters_deleted: int = 0
    # Rows of other tables holding one of the subject's keys (see _erase_other_tables).
    other_rows_erased: int = 0
    visitors: int = 0

    def document(self) -> dict:
        return dict(self.__dict__)


async def erase(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    subject: Subject,
    *,
    tenant_key: bytes,
    box: SecretBox,
) -> ErasureCounts:
    """Erase `subject` inside the caller's tenant transaction."""
    counts = ErasureCounts()
    reach = await subject_reach(conn, tenant_id, subject)
    keys, visitors, orders = reach.customer_keys, reach.visitors, reach.orders
    checkout_keys, cart_keys = reach.checkout_keys, reach.cart_keys
    counts.visitors = len(visitors)
    order_ids = list(orders)

    counts.touchpoints_deleted = _affected(
        await conn.execute(
            "DELETE FROM touchpoints WHERE tenant_id = $1 AND (visitor_id = ANY($2::text[])"
            " OR customer_key = ANY($3::bytea[]) OR checkout_key = ANY($4::bytea[])"
            " OR cart_key = ANY($5::bytea[]))",
            tenant_id,
            sorted(visitors),
            keys,
            checkout_keys,
            cart_keys,
        )
    )
    counts.orders_redacted = _affected(
        await conn.execute(
            "UPDATE orders SET redacted_at = now(), visitor_id = NULL, checkout_key = NULL,"
            " cart_key = NULL, customer_key = NULL, hints = '{}'"
            " WHERE tenant_id = $1 AND order_id = ANY($2::uuid[]) AND redacted_at IS NULL",
            tenant_id,
            order_ids,
        )
    )
    await conn.execute(
        "UPDATE order_attributions SET visitor_id = NULL"
        " WHERE tenant_id = $1 AND order_id = ANY($2::uuid[]) AND visitor_id IS NOT NULL",
        tenant_id,
        order_ids,
    )
    counts.payload_copies_redacted = _affected(
        await conn.execute(
            "UPDATE webhook_events SET payload = $4 WHERE tenant_id = $1"
            " AND (provider, external_order_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
            " AND payload <> $4",
            tenant_id,
            [r["provider"] for r in orders.values()],
            [r["external_order_id"] for r in orders.values()],
            REDACTED_PAYLOAD,
        )
    )
    # A data request answered earlier keeps its subject for its export: an erasure ends that.
    await conn.execute(
        "UPDATE privacy_requests SET subject = NULL WHERE tenant_id = $1"
        " AND kind = 'data_request' AND completed_at IS NOT NULL"
        " AND (subject->'customer_keys' ?| $2::text[] OR subject->'visitor_ids' ?| $3::text[])",
        tenant_id,
        [k.hex() for k in keys],
        sorted(visitors),
    )
    counts.dead_letters_deleted = await _erase_dead_letters(
        conn, tenant_id, subject, keys, visitors, orders, tenant_key, box
    )
    counts.other_rows_erased = await _erase_other_tables(
        conn, tenant_id, keys, sorted(visitors), checkout_keys, cart_keys
    )
    return counts


# Tables this module erases by their meaning; any other table with a key column is found in
# the catalog, so a table a later migration adds (a customer table keyed by customer_key) is
# covered without a change here.
_HANDLED_TABLES = frozenset({"touchpoints", "orders", "order_attributions"})
_KEY_COLUMNS = ("customer_key", "checkout_key", "cart_key", "visitor_id")

_KEY_COLUMNS_SQL = """
SELECT c.relname, a.attname, a.attnotnull OR coalesce(a.attnum = ANY(i.indkey), false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = current_schema()
  AND a.attname = ANY($1::text[])
  AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attname = 'tenant_id'
              AND NOT t.attisdropped)
ORDER BY 1, 2
"""


async def _erase_other_tables(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    customer_keys: list[bytes],
    visitors: list[str],
    checkout_keys: list[bytes],
    cart_keys: list[bytes],
) -> int:
    """In every other tenant table, a row keyed by one of the subject's keys is deleted, and a
    key in a nullable column that keys nothing is set to NULL. A table the runtime role may not
    change fails the erasure whole (it stays open, and is retried) rather than leaving a key."""
    values = {
        "customer_key": customer_keys,
        "checkout_key": checkout_keys,
        "cart_key": cart_keys,
        "visitor_id": visitors,
    }
    erased = 0
    for table, column, keys_the_row in await conn.fetch(_KEY_COLUMNS_SQL, list(_KEY_COLUMNS)):
        if table in _HANDLED_TABLES or not values[column]:
            continue
        cast = "text[]" if column == "visitor_id" else "bytea[]"
        where = f'tenant_id = $1 AND "{column}" = ANY($2::{cast})'
        if keys_the_row:
            statement = f'DELETE FROM "{table}" WHERE {where}'
        else:
            statement = f'UPDATE "{table}" SET "{column}" = NULL WHERE {where}'
        erased += _affected(await conn.execute(statement, tenant_id, values[column]))
    return erased


async def _erase_dead_letters(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    subject: Subject,
    keys: list[bytes],
    visitors: set[str],
    orders: dict,
    tenant_key: bytes,
    box: SecretBox,
) -> int:
    """Dead letters are kept encrypted and unparsed: each is decrypted and deleted when any
    string in it hashes to one of the subject's keys, or is one of their visitor or order ids;
    a shop redaction deletes every dead letter of its source."""
    if subject.source_id:
        status = await conn.execute(
            "DELETE FROM dead_events WHERE tenant_id = $1 AND source_id = $2",
            tenant_id,
            uuid.UUID(subject.source_id),
        )
        return _affected(status)
    wanted_keys = set(keys)
    wanted_ids = visitors | {r["external_order_id"] for r in orders.values()}
    doomed: list[uuid.UUID] = []
    last = None
    while True:
        rows = await conn.fetch(
            "SELECT dead_event_id, body_ciphertext FROM dead_events WHERE tenant_id = $1"
            " AND ($2::uuid IS NULL OR dead_event_id > $2) ORDER BY dead_event_id LIMIT $3",
            tenant_id,
            last,
            DEAD_LETTER_PAGE,
        )
        if not rows:
            break
        last = rows[-1]["dead_event_id"]
        for row in rows:
            try:
                body = box.decrypt(row["body_ciphertext"], context=tenant_id.bytes)
            except Exception:  # a body this deployment's key cannot read names nobody here
                continue
            for value in _strings(body):
                if value in wanted_ids or stitch_key(tenant_key, CUSTOMER, value) in wanted_keys:
                    doomed.append(row["dead_event_id"])
                    break
    if not doomed:
        return 0
    return _affected(
        await conn.execute(
            "DELETE FROM dead_events WHERE tenant_id = $1 AND dead_event_id = ANY($2::uuid[])",
            tenant_id,
            doomed,
        )
    )


def _strings(body: bytes) -> Iterator[str]:
    """Every string and number of a JSON body (as text); for a body that is not JSON, whatever
    looks like an email in it."""
    try:
        document = json.loads(body)
    except ValueError:
        yield from _EMAILISH.findall(body.decode("utf-8", "replace"))
        return
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            yield item
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            yield str(item)


def _affected(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
