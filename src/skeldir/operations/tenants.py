"""Operator actions on tenants, keys and webhook sources, run as the owner role."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.types.json import Jsonb

from skeldir.base import credentials, money
from skeldir.base.crypto import SecretBox
from skeldir.domains.providers import registry

PROVIDERS = tuple(registry.PROVIDERS)
# Sent by a trigger on every table a source resolution reads (see webhooks.sources).
SOURCES_CHANGED_CHANNEL = "skeldir_sources_changed"


class AdminError(ValueError):
    pass


@dataclass(frozen=True)
class CreatedTenant:
    tenant_id: uuid.UUID
    api_key: str
    webhook_key: str
    # Only writes touchpoints, so a shop's pages may carry it.
    collect_key: str


@dataclass(frozen=True)
class CreatedSource:
    source_id: uuid.UUID
    secret_id: uuid.UUID
    url: str


def create_tenant(
    conn: psycopg.Connection, box: SecretBox, name: str, reporting_currency: str = "USD"
) -> CreatedTenant:
    if not name or len(name) > 200:
        raise AdminError("a tenant name has 1 to 200 characters")
    reporting_currency = reporting_currency.upper()
    try:
        money.exponent(reporting_currency)
    except money.MoneyError as exc:
        raise AdminError("the reporting currency must be an ISO 4217 code such as USD") from exc
    tenant_id = uuid.uuid4()
    api_key = credentials.new_credential(credentials.API_KEY_PREFIX, tenant_id)
    webhook_key = credentials.new_credential(credentials.API_KEY_PREFIX, tenant_id)
    collect_key = credentials.new_credential(credentials.API_KEY_PREFIX, tenant_id)
    stitch_key = box.encrypt(secrets.token_bytes(32), context=tenant_id.bytes)
    with conn.transaction():
        conn.execute(
            "INSERT INTO tenants (tenant_id, name, reporting_currency, stitch_key_ciphertext)"
            " VALUES (%s, %s, %s, %s)",
            (tenant_id, name, reporting_currency, stitch_key),
        )
        _insert_key(conn, tenant_id, api_key, "admin", "created with the tenant")
        _insert_key(conn, tenant_id, webhook_key, "webhook", "X-Skeldir-Tenant-Key")
        _insert_key(conn, tenant_id, collect_key, "collect", "touchpoint collection")
    return CreatedTenant(tenant_id, api_key, webhook_key, collect_key)


RETENTION_FIELDS = {
    "retention_touchpoint_days": "touchpoints",
    "retention_payload_days": "kept payload copies",
    "retention_dead_letter_days": "dead letters after replay",
}


def configure_tenant(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID,
    *,
    lookback_days: int | None = None,
    half_life_days: float | None = None,
    retention: dict[str, int | None] | None = None,
) -> dict:
    """Change a tenant's attribution window and time-decay half-life (future recomputes) and
    its retention periods in days (applied by the daily retention run)."""
    if lookback_days is not None and not 1 <= lookback_days <= 365:
        raise AdminError("the lookback window is 1 to 365 days")
    if half_life_days is not None and not 0 < half_life_days <= 365:
        raise AdminError("the half-life is more than 0 and at most 365 days")
    retention = {k: v for k, v in (retention or {}).items() if v is not None}
    for name, days in retention.items():
        if name not in RETENTION_FIELDS:
            raise AdminError(f"no retention setting {name}")
        if not 1 <= days <= 3650:
            raise AdminError(f"the retention of {RETENTION_FIELDS[name]} is 1 to 3650 days")
    assignments = "".join(f", {name} = %({name})s" for name in retention)
    row = conn.execute(
        "UPDATE tenants SET lookback_days = coalesce(%(lookback)s, lookback_days),"
        " half_life_days = coalesce(%(half_life)s, half_life_days)" + assignments +
        " WHERE tenant_id = %(tenant)s RETURNING lookback_days, half_life_days,"
        " reporting_currency, " + ", ".join(RETENTION_FIELDS),
        {"lookback": lookback_days, "half_life": half_life_days, "tenant": tenant_id,
         **retention},
    ).fetchone()
    conn.commit()
    if row is None:
        raise AdminError(f"no tenant {tenant_id}")
    return {
        "tenant_id": str(tenant_id),
        "lookback_days": row[0],
        "half_life_days": float(row[1]),
        "reporting_currency": row[2],
        **dict(zip(RETENTION_FIELDS, row[3:], strict=True)),
    }


def _insert_key(
    conn: psycopg.Connection, tenant_id: uuid.UUID, key: str, scope: str, label: str
) -> None:
    conn.execute(
        "INSERT INTO api_keys (tenant_id, key_id, key_hash, scope, label) VALUES (%s, %s, %s, %s, %s)",
        (tenant_id, uuid.uuid4(), credentials.digest(key), scope, label),
    )


def add_source(
    conn: psycopg.Connection,
    box: SecretBox,
    *,
    tenant_id: uuid.UUID,
    provider: str,
    secret: str,
    public_url: str,
    label: str | None = None,
    tolerance_seconds: int | None = None,
) -> CreatedSource:
    if provider not in PROVIDERS:
        raise AdminError(f"provider must be one of {', '.join(PROVIDERS)}")
    settings = {}
    if tolerance_seconds is not None:
        if not 1 <= tolerance_seconds <= 86_400:
            raise AdminError("the timestamp tolerance is 1 to 86400 seconds")
        settings["tolerance_seconds"] = tolerance_seconds
    if not secret:
        raise AdminError("a signing secret cannot be empty")
    source_id = uuid.uuid4()
    token = credentials.new_credential(credentials.SOURCE_TOKEN_PREFIX, tenant_id)
    with conn.transaction():
        _require_tenant(conn, tenant_id)
        conn.execute(
            "INSERT INTO webhook_sources (tenant_id, source_id, provider, token_hash, label, settings)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (tenant_id, source_id, provider, credentials.digest(token), label, Jsonb(settings)),
        )
        secret_id = _insert_secret(conn, box, tenant_id, source_id, secret)
    return CreatedSource(source_id, secret_id, f"{public_url.rstrip('/')}/hooks/{token}")


def rotate_secret(
    conn: psycopg.Connection,
    box: SecretBox,
    *,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    secret: str | None,
    retire: list[uuid.UUID] | None = None,
    retire_others: bool = False,
    grace: timedelta = timedelta(0),
) -> dict:
    """Add a secret and/or retire old ones; a retired secret verifies until `grace` passes."""
    retire_at = datetime.now(timezone.utc) + grace
    with conn.transaction():
        found = conn.execute(
            "SELECT 1 FROM webhook_sources WHERE tenant_id = %s AND source_id = %s",
            (tenant_id, source_id),
        ).fetchone()
        if not found:
            raise AdminError("no such source for this tenant")
        added = _insert_secret(conn, box, tenant_id, source_id, secret) if secret else None
        retired: list[uuid.UUID] = []
        if retire_others:
            rows = conn.execute(
                "UPDATE webhook_source_secrets SET retired_at = %s WHERE tenant_id = %s"
                " AND source_id = %s AND secret_id IS DISTINCT FROM %s AND retired_at IS NULL"
                " RETURNING secret_id",
                (retire_at, tenant_id, source_id, added),
            ).fetchall()
            retired += [row[0] for row in rows]
        for secret_id in retire or []:
            row = conn.execute(
                "UPDATE webhook_source_secrets SET retired_at = %s WHERE tenant_id = %s"
                " AND source_id = %s AND secret_id = %s RETURNING secret_id",
                (retire_at, tenant_id, source_id, secret_id),
            ).fetchone()
            if not row:
                raise AdminError(f"no secret {secret_id} on this source")
            retired.append(row[0])
    return {
        "source_id": str(source_id),
        "added_secret_id": str(added) if added else None,
        "retired_secret_ids": [str(s) for s in retired],
        "retired_at": retire_at.isoformat() if retired else None,
    }


def list_sources(conn: psycopg.Connection, tenant_id: uuid.UUID) -> list[dict]:
    rows = conn.execute(
        "SELECT s.source_id, s.provider, s.label, s.created_at, s.disabled_at,"
        " coalesce(json_agg(json_build_object('secret_id', k.secret_id, 'created_at', k.created_at,"
        " 'retired_at', k.retired_at) ORDER BY k.created_at) FILTER (WHERE k.secret_id IS NOT NULL), '[]')"
        " FROM webhook_sources s LEFT JOIN webhook_source_secrets k USING (tenant_id, source_id)"
        " WHERE s.tenant_id = %s GROUP BY s.tenant_id, s.source_id ORDER BY s.created_at",
        (tenant_id,),
    ).fetchall()
    return [
        {
            "source_id": str(r[0]),
            "provider": r[1],
            "label": r[2],
            "created_at": r[3].isoformat(),
            "disabled_at": r[4].isoformat() if r[4] else None,
            "secrets": r[5],
        }
        for r in rows
    ]


def _require_tenant(conn: psycopg.Connection, tenant_id: uuid.UUID) -> None:
    if not conn.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,)).fetchone():
        raise AdminError(f"no tenant {tenant_id}")


def _insert_secret(
    conn: psycopg.Connection,
    box: SecretBox,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    secret: str,
) -> uuid.UUID:
    secret_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO webhook_source_secrets (tenant_id, source_id, secret_id, ciphertext)"
        " VALUES (%s, %s, %s, %s)",
        (tenant_id, source_id, secret_id, box.encrypt(secret.encode(), context=source_id.bytes)),
    )
    return secret_id
