"""Database access: the runtime pool, the one tenant transaction, the one owner connection.

The runtime role is subject to row-level security; every query it runs on tenant data goes
through `tenant_transaction`, which sets `app.tenant_id` for that transaction only (never for
the session: a pooled connection would carry one tenant's context into another's request).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import orjson
import psycopg

from skeldir.base.config import Settings

SET_TENANT_SQL = "SELECT set_config('app.tenant_id', $1::text, true)"


class DatabaseNotConfigured(RuntimeError):
    pass


# What asyncpg raises when the server is away rather than when a query is wrong.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    # No socket or a refused one; TimeoutError is one too (a connect or pool acquire timeout).
    OSError,
    # Class 08: the connection was lost in the middle of an operation.
    asyncpg.PostgresConnectionError,
    # The server is starting up, shutting down, or terminated the session (fast shutdown).
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # A pooled connection that died while idle: used once asyncpg saw it close, or in the
    # moment between the server's "terminating connection" and the close (InternalClientError:
    # "cannot switch to state ...; another operation (2) is in progress").
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.TooManyConnectionsError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on release: nothing here leaves session state behind
    (the tenant context and advisory locks are transaction-scoped; LISTEN is undone by its
    owner), and that round trip would double the cost of a one-statement ingest."""


async def create_pool(
    settings: Settings, *, max_size: int | None = None, plan_every_query: bool = False
) -> asyncpg.Pool:
    """The runtime role's pool. `plan_every_query` suits batch work (the worker): a generic plan
    cached while tables were nearly empty can pick an index that scans a whole tenant later
    (sizes tie, so the choice is arbitrary); planning each batch query costs little there."""
    if not settings.database_url:
        raise DatabaseNotConfigured("SKELDIR_DATABASE_URL is not set")
    size = max_size or settings.db_pool_size
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=min(2, size),
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        # Statements are few and fixed; caching their plans is the point of a pool.
        statement_cache_size=256,
        command_timeout=60,
        server_settings={"plan_cache_mode": "force_custom_plan"} if plan_every_query else {},
    )


@asynccontextmanager
async def tenant_transaction(
    pool: asyncpg.Pool, tenant_id: uuid.UUID | str
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which row-level security admits exactly one tenant's rows."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute(SET_TENANT_SQL, str(tenant_id))
            yield conn


@contextmanager
def owner_connection(
    settings: Settings, *, autocommit: bool = False
) -> Iterator[psycopg.Connection]:
    """A connection as the owner role, for migrations and operator commands."""
    if not settings.owner_database_url:
        raise DatabaseNotConfigured("SKELDIR_OWNER_DATABASE_URL is not set and no data dir is up")
    with psycopg.connect(settings.owner_database_url, autocommit=autocommit) as conn:
        yield conn
