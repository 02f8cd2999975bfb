"""One pull: an account's day range read from its platform and made the ledger's figures for
those days, in one transaction with the connector's status.

The platform is read first, with no database connection held; then one tenant transaction
replaces exactly the days the pull covered (`ledger.replace_days`), records the status and, for
a backfill, where it got to. A pull that fails at any point leaves the ledger as it was and
says why in the connector's status (`needs_reauth` when only a new grant can fix it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import asyncpg

from skeldir.base.crypto import SecretBox
from skeldir.base.db import tenant_transaction
from skeldir.base.observability import metrics
from skeldir.domains.connectors import store
from skeldir.domains.connectors.api import Api
from skeldir.domains.connectors.platform import Connector, ConnectorError, PlatformError
from skeldir.domains.connectors.registry import CONNECTORS
from skeldir.domains.spend import ledger
from skeldir.domains.spend.rows import SpendRow, validate

log = logging.getLogger(__name__)

_SHOWN_ROW_ERRORS = 3


@dataclass(frozen=True)
class PullResult:
    connector_id: uuid.UUID
    platform: str
    start: date
    end: date
    outcome: str
    rows: int = 0
    error: str | None = None


def recent_days(today: date) -> tuple[date, date]:
    """Yesterday and today: the days still changing by the hour."""
    return today - timedelta(days=1), today


def restated_days(today: date, days: int) -> tuple[date, date]:
    """The last `days` days, today included: platforms restate them."""
    return today - timedelta(days=days - 1), today


def summed(rows: list[SpendRow]) -> list[SpendRow]:
    """One row per ledger key, figures added up: a platform that splits an ad's day into
    several rows (a breakdown) must neither lose nor double any of it."""
    by_key: dict[tuple, SpendRow] = {}
    for row in rows:
        seen = by_key.get(row.key)
        if seen is None:
            by_key[row.key] = row
            continue
        if seen.currency != row.currency:
            raise PlatformError(f"two currencies for one ad and day: {seen.currency}, {row.currency}")
        by_key[row.key] = replace(row, spend_minor=seen.spend_minor + row.spend_minor,
                                  impressions=seen.impressions + row.impressions,
                                  clicks=seen.clicks + row.clicks)
    return list(by_key.values())


async def fetch_rows(api: Api, connector: Connector, credentials: dict[str, str],
                     account_id: str, start: date, end: date) -> list[SpendRow]:
    """The platform's rows for the range as ledger rows; PlatformError when any cannot be one
    (a half-read day must not replace a whole one)."""
    raw = await connector.pull(api, credentials, account_id, start, end)
    valid: list[SpendRow] = []
    errors: list[str] = []
    for index, item in enumerate(raw):
        result = validate(connector.to_spend(item, account_id), index)
        if isinstance(result, SpendRow):
            valid.append(result)
        else:
            errors.append(f"row {index}: {'; '.join(result.errors)}")
    if errors:
        raise PlatformError(f"{len(errors)} of {len(raw)} rows cannot be spend rows: "
                            + " | ".join(errors[:_SHOWN_ROW_ERRORS]))
    outside = [r.day for r in valid if not start <= r.day <= end]
    if outside:
        raise PlatformError(f"the platform returned days outside {start}..{end}: {min(outside)}")
    return summed(valid)


async def pull(pool: asyncpg.Pool, api: Api, box: SecretBox, tenant_id: uuid.UUID,
               connector_id: uuid.UUID, start: date, end: date, *,
               backfill: bool = False) -> PullResult:
    """Pull `start`..`end` for one connector and replace those days; with `backfill`, also
    move the connector's backfill past `end` in the same transaction."""
    async with tenant_transaction(pool, tenant_id) as conn:
        stored = await store.get(conn, connector_id)
        if stored is None:
            raise LookupError(f"no connector {connector_id}")
        secrets = await store.credentials(conn, box, tenant_id, connector_id)
    platform = stored.platform
    try:
        rows = await fetch_rows(api, CONNECTORS[platform], secrets, stored.account_id, start, end)
    except ConnectorError as exc:
        status = "needs_reauth" if exc.outcome == "needs_reauth" else "error"
        async with tenant_transaction(pool, tenant_id) as conn:
            await store.record_pull(conn, connector_id, status, str(exc))
        metrics.CONNECTOR_PULLS.labels(platform, exc.outcome).inc()
        log.warning("connector_pull_failed", extra={
            "tenant_id": str(tenant_id), "connector_id": str(connector_id), "platform": platform,
            "outcome": exc.outcome, "error": str(exc)})
        return PullResult(connector_id, platform, start, end, exc.outcome, error=str(exc))
    async with tenant_transaction(pool, tenant_id) as conn:
        # Removed while the platform was read: nothing to replace on its behalf.
        if await store.get(conn, connector_id, for_update=True) is None:
            raise LookupError(f"no connector {connector_id}")
        written = await ledger.replace_days(conn, tenant_id, platform, stored.account_id,
                                            start, end, rows)
        await store.record_pull(conn, connector_id, "ok", None)
        if backfill:
            await store.advance_backfill(conn, connector_id, end)
    metrics.CONNECTOR_PULLS.labels(platform, "ok").inc()
    metrics.CONNECTOR_ROWS.labels(platform).inc(written)
    log.info("connector_pulled", extra={
        "tenant_id": str(tenant_id), "connector_id": str(connector_id), "platform": platform,
        "from": start.isoformat(), "to": end.isoformat(), "rows": written})
    return PullResult(connector_id, platform, start, end, "ok", written)


async def backfill_step(pool: asyncpg.Pool, api: Api, box: SecretBox, tenant_id: uuid.UUID,
                        connector_id: uuid.UUID) -> PullResult | None:
    """Pull the next chunk of the connector's backfill (None when it has none left)."""
    async with tenant_transaction(pool, tenant_id) as conn:
        stored = await store.get(conn, connector_id)
    if stored is None:
        raise LookupError(f"no connector {connector_id}")
    chunk = store.backfill_chunk(stored, api.settings.connector_backfill_chunk_days)
    if chunk is None:
        return None
    return await pull(pool, api, box, tenant_id, connector_id, *chunk, backfill=True)


@dataclass(frozen=True)
class Scheduled:
    tenant_id: uuid.UUID
    connector_id: uuid.UUID
    platform: str
    status: str
    last_success_at: datetime | None
    backfill_pending: bool


async def scheduled(pool: asyncpg.Pool) -> list[Scheduled]:
    """Every tenant's connectors, for the scheduled pulls (ids and status, no credentials)."""
    return [Scheduled(**dict(r)) for r in await pool.fetch("SELECT * FROM connectors_to_pull()")]


def lag_by_platform(connectors: list[Scheduled], now: datetime) -> dict[str, float]:
    """Per platform, seconds since the least recent last success among its connectors: how
    stale its oldest data is, whatever the reason (a revoked grant included). A connector never
    pulled yet has a status, not a lag."""
    lag: dict[str, float] = {platform: 0.0 for platform in CONNECTORS}
    for c in connectors:
        if c.last_success_at is not None:
            lag[c.platform] = max(lag[c.platform], (now - c.last_success_at).total_seconds())
    return lag
