"""A tenant's API keys: create (the key is shown once, only its hash is kept), list, revoke.

Runs as the runtime role inside the tenant's transaction, so the API (with an admin key) and
the CLI share this one implementation and row-level security confines both to one tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from skeldir.base import credentials
from skeldir.base.db import tenant_transaction

# read: reports and exports; admin: read plus keys and operations; collect: only writes
# touchpoints (safe on a shop's pages); webhook: the X-Skeldir-Tenant-Key of the legacy routes.
SCOPES = ("read", "admin", "collect", "webhook")
MAX_LABEL_LENGTH = 200


class KeyRequestError(ValueError):
    """A request about keys that cannot be honoured (bad scope, unknown key)."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key_id: uuid.UUID
    scope: str
    label: str | None
    created_at: datetime
    # The only time the key itself exists outside the caller's hands.
    api_key: str


def _check(scope: str, label: str | None) -> None:
    if scope not in SCOPES:
        raise KeyRequestError(f"scope must be one of {', '.join(SCOPES)}")
    if label is not None and len(label) > MAX_LABEL_LENGTH:
        raise KeyRequestError(f"a label has at most {MAX_LABEL_LENGTH} characters")


async def create_key(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, scope: str, label: str | None = None
) -> CreatedKey:
    _check(scope, label)
    api_key = credentials.new_credential(credentials.API_KEY_PREFIX, tenant_id)
    key_id = uuid.uuid4()
    async with tenant_transaction(pool, tenant_id) as conn:
        if not await conn.fetchval("SELECT 1 FROM tenants WHERE tenant_id = $1", tenant_id):
            raise KeyRequestError(f"no tenant {tenant_id}")
        created_at = await conn.fetchval(
            "INSERT INTO api_keys (tenant_id, key_id, key_hash, scope, label)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
            tenant_id,
            key_id,
            credentials.digest(api_key),
            scope,
            label,
        )
    return CreatedKey(key_id, scope, label, created_at, api_key)


async def list_keys(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> list[dict]:
    """Every key of the tenant, revoked ones too, with when each was last used (never a hash)."""
    async with tenant_transaction(pool, tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT k.key_id, k.scope, k.label, k.created_at, k.revoked_at,"
            " (SELECT max(a.at) FROM audit_log a WHERE a.tenant_id = k.tenant_id"
            "  AND a.key_id = k.key_id) AS last_used_at"
            " FROM api_keys k ORDER BY k.created_at, k.key_id"
        )
    return [key_document(row) for row in rows]


async def revoke_key(pool: asyncpg.Pool, tenant_id: uuid.UUID, key_id: uuid.UUID) -> dict:
    """Revoke at once; revoking a revoked key keeps its first revocation time."""
    async with tenant_transaction(pool, tenant_id) as conn:
        row = await conn.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1"
            " RETURNING key_id, scope, label, created_at, revoked_at, NULL::timestamptz"
            " AS last_used_at",
            key_id,
        )
    if row is None:
        raise LookupError(f"no key {key_id} for this tenant")
    return key_document(row)


def key_document(row) -> dict:
    return {
        "key_id": str(row["key_id"]),
        "scope": row["scope"],
        "label": row["label"],
        "created_at": row["created_at"].isoformat(),
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
    }
