"""Operator actions on attribution, run as the owner role: a tenant's channel rules (versioned).
Re-attributing a date range afterwards is `attribution.reattribution`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from skeldir.domains.attribution.channel_rules import RuleSet


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
