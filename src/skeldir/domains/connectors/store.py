"""A tenant's connectors: which platform account, its credentials (encrypted, never read back
out of this module except to call the platform), its status and its backfill.

Every function runs on a connection already in the tenant's transaction (row-level security).
Credentials are one JSON object encrypted with the deployment's secret box, bound to the
tenant and the connector (the AEAD context), like webhook signing secrets.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg
import orjson

from skeldir.base.crypto import SecretBox
from skeldir.domains.connectors.registry import CONNECTORS

STATUSES = ("pending", "ok", "needs_reauth", "error")
MAX_CREDENTIAL_LENGTH = 4096
MAX_BACKFILL_DAYS = 3 * 366


class ConnectorConfigError(ValueError):
    """A connector that cannot be added or asked for as given."""


@dataclass(frozen=True)
class StoredConnector:
    connector_id: uuid.UUID
    platform: str
    account_id: str
    status: str
    last_error: str | None
    last_pull_at: datetime | None
    last_success_at: datetime | None
    backfill_start: date | None
    backfill_end: date | None
    backfill_next: date | None
    created_at: datetime

    def public(self, now: datetime | None = None) -> dict:
        """What the API and the CLI show: never a credential."""
        return {
            "connector_id": str(self.connector_id), "platform": self.platform,
            "account_id": self.account_id, "status": self.status,
            "last_error": self.last_error,
            "last_pull_at": _iso(self.last_pull_at),
            "last_success_at": _iso(self.last_success_at),
            "lag_seconds": (round(max(0.0, (now - self.last_success_at).total_seconds()), 3)
                            if now and self.last_success_at else None),
            "backfill": None if self.backfill_start is None else {
                "from": self.backfill_start.isoformat(), "to": self.backfill_end.isoformat(),
                "next": _iso(self.backfill_next), "done": self.backfill_next is None},
            "created_at": self.created_at.isoformat(),
        }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


_COLUMNS = ("connector_id, platform, account_id, status, last_error, last_pull_at,"
            " last_success_at, backfill_start, backfill_end, backfill_next, created_at")


def _context(tenant_id: uuid.UUID, connector_id: uuid.UUID) -> bytes:
    return tenant_id.bytes + connector_id.bytes


def checked_credentials(platform: str, credentials: Mapping[str, object]) -> dict[str, str]:
    connector = CONNECTORS[platform]
    allowed = (*connector.required_credentials, *connector.optional_credentials)
    unknown = sorted(str(k) for k in credentials if k not in allowed)
    missing = [k for k in connector.required_credentials if not credentials.get(k)]
    if unknown or missing:
        raise ConnectorConfigError(
            f"{platform} credentials are {', '.join(connector.required_credentials)}"
            + (f" (optional: {', '.join(connector.optional_credentials)})"
               if connector.optional_credentials else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    for key, value in credentials.items():
        if (not isinstance(value, str) or not 0 < len(value) <= MAX_CREDENTIAL_LENGTH
                or not value.isprintable()):
            raise ConnectorConfigError(
                f"credential {key}: printable text of 1 to {MAX_CREDENTIAL_LENGTH} characters")
    return {k: v for k, v in credentials.items() if v}


def checked_account(platform: str, account_id: str) -> str:
    if platform not in CONNECTORS:
        raise ConnectorConfigError(f"platform: one of {', '.join(CONNECTORS)}")
    try:
        return CONNECTORS[platform].account_id(account_id)
    except ValueError as exc:
        raise ConnectorConfigError(str(exc)) from None


async def add(conn: asyncpg.Connection, box: SecretBox, tenant_id: uuid.UUID, platform: str,
              account_id: str, credentials: Mapping[str, object]) -> StoredConnector:
    """Connect an account; connecting it again replaces its credentials (a new grant after
    `needs_reauth`) and sets it pending until its next pull."""
    account_id = checked_account(platform, account_id)
    secrets = checked_credentials(platform, credentials)
    # Two adds of one account at once: the second waits, then finds the first's connector
    # (whose id the credentials are bound to) instead of failing on the unique key.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"connectors|{tenant_id}|{platform}|{account_id}")
    existing = await conn.fetchval(
        "SELECT connector_id FROM connectors WHERE tenant_id = $1 AND platform = $2"
        " AND account_id = $3", tenant_id, platform, account_id)
    connector_id = existing or uuid.uuid4()
    ciphertext = box.encrypt(orjson.dumps(secrets), context=_context(tenant_id, connector_id))
    row = await conn.fetchrow(
        f"INSERT INTO connectors (tenant_id, connector_id, platform, account_id,"
        f" credentials_ciphertext) VALUES ($1, $2, $3, $4, $5)"
        f" ON CONFLICT (tenant_id, connector_id) DO UPDATE SET"
        f" credentials_ciphertext = EXCLUDED.credentials_ciphertext, status = 'pending',"
        f" last_error = NULL RETURNING {_COLUMNS}",
        tenant_id, connector_id, platform, account_id, ciphertext)
    return StoredConnector(**dict(row))


async def listed(conn: asyncpg.Connection) -> list[StoredConnector]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM connectors ORDER BY created_at, connector_id")
    return [StoredConnector(**dict(r)) for r in rows]


async def get(conn: asyncpg.Connection, connector_id: uuid.UUID, *,
              for_update: bool = False) -> StoredConnector | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM connectors WHERE connector_id = $1"
        + (" FOR UPDATE" if for_update else ""), connector_id)
    return StoredConnector(**dict(row)) if row else None


async def remove(conn: asyncpg.Connection, connector_id: uuid.UUID) -> bool:
    """Forget the connector and its credentials; the spend it pulled stays in the ledger."""
    return await conn.fetchval(
        "DELETE FROM connectors WHERE connector_id = $1 RETURNING true", connector_id) or False


async def credentials(conn: asyncpg.Connection, box: SecretBox, tenant_id: uuid.UUID,
                      connector_id: uuid.UUID) -> dict[str, str]:
    ciphertext = await conn.fetchval(
        "SELECT credentials_ciphertext FROM connectors WHERE connector_id = $1", connector_id)
    if ciphertext is None:
        raise LookupError(f"no connector {connector_id}")
    return orjson.loads(box.decrypt(ciphertext, context=_context(tenant_id, connector_id)))


async def record_pull(conn: asyncpg.Connection, connector_id: uuid.UUID, status: str,
                      error: str | None) -> None:
    await conn.execute(
        "UPDATE connectors SET status = $2, last_error = $3, last_pull_at = now(),"
        " last_success_at = CASE WHEN $2 = 'ok' THEN now() ELSE last_success_at END"
        " WHERE connector_id = $1", connector_id, status, error)


async def start_backfill(conn: asyncpg.Connection, connector_id: uuid.UUID, start: date,
                         end: date) -> StoredConnector:
    """Record a backfill of `start`..`end`; the same range asked again resumes where it
    stopped, another one starts over."""
    if start > end:
        raise ConnectorConfigError("the backfill's first day is after its last")
    if (end - start).days + 1 > MAX_BACKFILL_DAYS:
        raise ConnectorConfigError(f"a backfill covers at most {MAX_BACKFILL_DAYS} days")
    row = await conn.fetchrow(
        f"UPDATE connectors SET backfill_next = CASE WHEN backfill_start = $2"
        f" AND backfill_end = $3 AND backfill_next IS NOT NULL THEN backfill_next ELSE $2 END,"
        f" backfill_start = $2, backfill_end = $3 WHERE connector_id = $1 RETURNING {_COLUMNS}",
        connector_id, start, end)
    if row is None:
        raise LookupError(f"no connector {connector_id}")
    return StoredConnector(**dict(row))


async def advance_backfill(conn: asyncpg.Connection, connector_id: uuid.UUID,
                           covered_to: date) -> None:
    await conn.execute(
        "UPDATE connectors SET backfill_next = CASE WHEN $2 >= backfill_end THEN NULL"
        " ELSE $2 + 1 END WHERE connector_id = $1", connector_id, covered_to)


def backfill_chunk(stored: StoredConnector, chunk_days: int) -> tuple[date, date] | None:
    """The next bounded range of the connector's backfill, or None when there is none."""
    if stored.backfill_next is None or stored.backfill_end is None:
        return None
    return stored.backfill_next, min(stored.backfill_end,
                                     stored.backfill_next + timedelta(days=chunk_days - 1))
