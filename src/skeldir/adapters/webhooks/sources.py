"""Resolve a webhook request to its tenant, source and signing secrets, cached in process.

The cache is cleared by a notification that a trigger sends whenever a key, source, secret or
tenant changes (PostgreSQL NOTIFY on a connection of its own), so a revocation takes effect at
once. The cache is used only while that connection listens: when it is lost (a database restart)
every lookup goes to the database until it listens again, and the cache starts empty then, since
notifications sent meanwhile were never heard. Entries also expire, for secrets whose retirement
was scheduled for later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

import asyncpg

from skeldir.base import credentials
from skeldir.base.crypto import SecretBox
from skeldir.base.db import DATABASE_UNAVAILABLE_ERRORS
from skeldir.operations.tenants import SOURCES_CHANGED_CHANNEL

log = logging.getLogger(__name__)

# Between attempts to listen again after the listening connection was lost.
RELISTEN_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class ResolvedSource:
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    provider: str
    settings: dict
    secrets: tuple[bytes, ...]
    # Keys the digests that link orders to touchpoints (None for a tenant created without one).
    stitch_key: bytes | None = None


class SourceResolver:
    def __init__(
        self, pool: asyncpg.Pool, box: SecretBox, ttl_seconds: float, listen_dsn: str
    ) -> None:
        self._pool = pool
        self._box = box
        self._ttl = ttl_seconds
        self._listen_dsn = listen_dsn
        self._cache: dict[tuple, tuple[float, ResolvedSource | None]] = {}
        self._listener: asyncpg.Connection | None = None
        self._watcher: asyncio.Task | None = None

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def start(self) -> None:
        """Listen (failing as startup fails when the database is away), then keep listening."""
        lost = await self._listen()
        self._watcher = asyncio.create_task(self._keep_listening(lost))

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._stop_listening()

    async def _listen(self) -> asyncio.Event:
        lost = asyncio.Event()
        listener = await asyncpg.connect(self._listen_dsn, timeout=5)
        listener.add_termination_listener(lambda _conn: lost.set())
        await listener.add_listener(SOURCES_CHANGED_CHANNEL, self._on_change)
        self._listener = listener
        # Whatever changed while nobody listened is unknown: start from nothing.
        self._cache.clear()
        return lost

    async def _keep_listening(self, lost: asyncio.Event) -> None:
        while True:
            await lost.wait()
            log.warning("source_listener_lost")
            await self._stop_listening()
            while True:
                await asyncio.sleep(RELISTEN_INTERVAL_SECONDS)
                try:
                    lost = await self._listen()
                except (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError):
                    continue
                log.info("source_listener_restored")
                break

    async def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        self._cache.clear()
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    def _on_change(self, *_args: object) -> None:
        self._cache.clear()

    async def by_token(self, token: str) -> ResolvedSource | None:
        parsed = credentials.parse_credential(token, credentials.SOURCE_TOKEN_PREFIX)
        if parsed is None:
            return None
        return await self._cached(
            ("token", parsed.tenant_id, parsed.digest),
            "SELECT * FROM resolve_source($1, $2)",
            parsed.tenant_id,
            parsed.digest,
        )

    async def by_tenant_key(self, tenant_key: str, provider: str) -> ResolvedSource | None:
        parsed = credentials.parse_credential(tenant_key, credentials.API_KEY_PREFIX)
        if parsed is None:
            return None
        return await self._cached(
            ("key", parsed.tenant_id, parsed.digest, provider),
            "SELECT * FROM resolve_source_by_key($1, $2, $3)",
            parsed.tenant_id,
            parsed.digest,
            provider,
        )

    async def _cached(
        self, cache_key: tuple, query: str, tenant_id: uuid.UUID, *args: object
    ) -> ResolvedSource | None:
        now = time.monotonic()
        listening = self.listening
        hit = self._cache.get(cache_key) if listening else None
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await self._pool.fetchrow(query, tenant_id, *args)
        resolved = None
        if row is not None:
            source_id = row["source_id"]
            resolved = ResolvedSource(
                tenant_id=tenant_id,
                source_id=source_id,
                provider=row["provider"],
                settings=row["settings"] or {},
                secrets=tuple(
                    self._box.decrypt(c, context=source_id.bytes) for c in row["secrets"]
                ),
                stitch_key=self._box.decrypt(row["stitch_key"], context=tenant_id.bytes)
                if row["stitch_key"]
                else None,
            )
        # Not while deaf: a change made now would never clear this entry.
        if listening and self.listening:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (now + self._ttl, resolved)
        return resolved
