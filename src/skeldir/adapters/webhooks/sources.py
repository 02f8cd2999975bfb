"""Resolve a webhook request to its tenant, source and signing secrets, cached in process.

The cache is cleared when an operator changes a source (PostgreSQL NOTIFY) and entries also
expire, so a retired secret stops verifying promptly even if a notification is missed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg

from skeldir.base import credentials
from skeldir.base.crypto import SecretBox
from skeldir.operations.tenants import SOURCES_CHANGED_CHANNEL


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
    def __init__(self, pool: asyncpg.Pool, box: SecretBox, ttl_seconds: float) -> None:
        self._pool = pool
        self._box = box
        self._ttl = ttl_seconds
        self._cache: dict[tuple, tuple[float, ResolvedSource | None]] = {}
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(SOURCES_CHANGED_CHANNEL, self._on_change)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.remove_listener(SOURCES_CHANGED_CHANNEL, self._on_change)
            await self._pool.release(self._listener)
            self._listener = None

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
        hit = self._cache.get(cache_key)
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
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[cache_key] = (now + self._ttl, resolved)
        return resolved
