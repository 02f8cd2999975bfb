"""What Skeldir holds about a data request's subject, for the shop to answer its customer:
their orders, each order's ledger entries and channel credits, and their touchpoints with the
channel each was classified into. Read when asked, from the subject's keys."""

from __future__ import annotations

import uuid

import asyncpg

from skeldir.domains.privacy.erasure import subject_reach
from skeldir.domains.privacy.subjects import Subject


async def held_data(conn: asyncpg.Connection, tenant_id: uuid.UUID, subject: Subject) -> dict:
    reach = await subject_reach(conn, tenant_id, subject)
    order_ids = list(reach.orders)
    orders = await conn.fetch(
        "SELECT o.order_id, o.provider, o.external_order_id, o.currency, o.total_minor,"
        " o.ordered_at, o.cancelled_at, o.redacted_at, a.channels"
        " FROM orders o LEFT JOIN order_attributions a USING (tenant_id, order_id)"
        " WHERE o.tenant_id = $1 AND o.order_id = ANY($2::uuid[])"
        " ORDER BY o.ordered_at, o.external_order_id",
        tenant_id,
        order_ids,
    )
    entries = await conn.fetch(
        "SELECT order_id, kind, amount_minor, currency, occurred_at FROM revenue_entries"
        " WHERE tenant_id = $1 AND order_id = ANY($2::uuid[]) ORDER BY occurred_at, entry_id",
        tenant_id,
        order_ids,
    )
    touchpoints = await conn.fetch(
        "SELECT touchpoint_id, visitor_id, occurred_at, is_visit, channel, hints FROM touchpoints"
        " WHERE tenant_id = $1 AND (visitor_id = ANY($2::text[])"
        " OR customer_key = ANY($3::bytea[])) ORDER BY occurred_at, touchpoint_id",
        tenant_id,
        sorted(reach.visitors),
        reach.customer_keys,
    )
    by_order: dict[uuid.UUID, list[dict]] = {}
    for entry in entries:
        by_order.setdefault(entry["order_id"], []).append(
            {
                "kind": entry["kind"],
                "amount_minor": entry["amount_minor"],
                "currency": entry["currency"],
                "occurred_at": entry["occurred_at"].isoformat(),
            }
        )
    return {
        "orders": [
            {
                "provider": o["provider"],
                "external_order_id": o["external_order_id"],
                "currency": o["currency"],
                "total_minor": o["total_minor"],
                "ordered_at": o["ordered_at"].isoformat() if o["ordered_at"] else None,
                "cancelled_at": o["cancelled_at"].isoformat() if o["cancelled_at"] else None,
                "redacted": o["redacted_at"] is not None,
                "channels": list(o["channels"] or []),
                "entries": by_order.get(o["order_id"], []),
            }
            for o in orders
        ],
        "touchpoints": [
            {
                "touchpoint_id": t["touchpoint_id"],
                "visitor_id": t["visitor_id"],
                "occurred_at": t["occurred_at"].isoformat(),
                "kind": "visit" if t["is_visit"] else "identify",
                "channel": t["channel"],
                "hints": t["hints"],
            }
            for t in touchpoints
        ],
    }
