"""Operator actions on attribution, run as the owner role: a tenant's channel rules (versioned)
and re-attributing a date range after rules, weights or rates changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg.types.json import Jsonb

from skeldir.attribution import reattribution
from skeldir.attribution.channel_rules import RuleSet


@dataclass(frozen=True)
class RulesVersion:
    version: int
    fingerprint: str
    changed: bool


def set_channel_rules(
    conn: psycopg.Connection, tenant_id: uuid.UUID, document: dict
) -> RulesVersion:
    """Store `document` as the tenant's next rules version (RuleSetError when invalid)."""
    rules = RuleSet.from_document(document)
    fingerprint = rules.fingerprint()
    with conn.transaction():
        if not conn.execute(
            "SELECT 1 FROM tenants WHERE tenant_id = %s FOR UPDATE", (tenant_id,)
        ).fetchone():
            raise LookupError(f"no tenant {tenant_id}")
        latest = conn.execute(
            "SELECT version, fingerprint FROM channel_rule_sets WHERE tenant_id = %s"
            " ORDER BY version DESC LIMIT 1",
            (tenant_id,),
        ).fetchone()
        if latest and latest[1] == fingerprint:
            return RulesVersion(latest[0], fingerprint, changed=False)
        version = (latest[0] if latest else 0) + 1
        conn.execute(
            "INSERT INTO channel_rule_sets (tenant_id, version, document, fingerprint)"
            " VALUES (%s, %s, %s, %s)",
            (tenant_id, version, Jsonb(rules.to_document()), fingerprint),
        )
    return RulesVersion(version, fingerprint, changed=True)


def channel_rules(conn: psycopg.Connection, tenant_id: uuid.UUID) -> tuple[int, dict] | None:
    row = conn.execute(
        "SELECT version, document FROM channel_rule_sets WHERE tenant_id = %s"
        " ORDER BY version DESC LIMIT 1",
        (tenant_id,),
    ).fetchone()
    return (row[0], row[1]) if row else None


def orders_in_range(conn: psycopg.Connection, tenant_id: uuid.UUID, start: date, end: date) -> int:
    return conn.execute(
        "SELECT count(*) FROM orders WHERE tenant_id = %s AND has_snapshot"
        " AND ordered_at >= %s AND ordered_at < %s",
        (tenant_id, *reattribution.utc_day_bounds(start, end)),
    ).fetchone()[0]


def mark_range_pending(
    conn: psycopg.Connection, tenant_id: uuid.UUID, start: date, end: date
) -> Iterator[int]:
    """Mark the range's orders pending, a batch per transaction; yields each batch's size.
    The API's runtime-role version (`reattribution`) runs the same statement."""
    since, until = reattribution.utc_day_bounds(start, end)
    after = uuid.UUID(int=0)
    while True:
        with conn.transaction():
            batch = (tenant_id, since, until, after, reattribution.MARK_BATCH_SIZE)
            rows = psycopg.RawCursor(conn).execute(reattribution.MARK_BATCH_SQL, batch).fetchall()
        if not rows:
            return
        after = max(row[0] for row in rows)
        yield len(rows)


def pending_orders(conn: psycopg.Connection, tenant_id: uuid.UUID) -> int:
    return conn.execute(
        "SELECT count(*) FROM pending_orders WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()[0]
