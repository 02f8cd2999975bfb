"""Database access: the runtime and worker pools, the one tenant transaction, the one owner
connection.

The runtime role (the API) and the worker role are subject to row-level security; every query
they run on tenant data goes through `tenant_transaction`, which sets `app.tenant_id` for that
transaction only (never for the session: a pooled connection would carry one tenant's context
into another's request). Only the worker role may call the functions that list tenant ids
across tenants for its schedules.
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


class BoundedPool(asyncpg.Pool):
    """A pool whose every acquire, `pool.fetch*` included, gives up after `acquire_timeout`
    seconds with TimeoutError (a database-unavailable error: the API answers 503 with
    Retry-After) instead of queueing a request behind connections that are all taken."""

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None):
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


def session_limits(settings: Settings) -> dict[str, str]:
    """Server-side bounds of an API session: no statement runs longer than
    `db_statement_timeout_seconds`, and no transaction stays open and idle (a client that
    stopped reading, a stalled task) longer than `db_idle_in_transaction_timeout_seconds`."""
    return {
        "statement_timeout": _milliseconds(settings.db_statement_timeout_seconds),
        "idle_in_transaction_session_timeout": _milliseconds(
            settings.db_idle_in_transaction_timeout_seconds
        ),
    }


def _milliseconds(seconds: float) -> str:
    return str(max(0, round(seconds * 1000)))


async def create_pool(
    settings: Settings,
    *,
    max_size: int | None = None,
    server_settings: dict[str, str] | None = None,
    url: str | None = None,
    min_size: int = 2,
) -> BoundedPool:
    """The runtime role's pool (the API); at `url` when given (a read replica), opening
    `min_size` connections at once."""
    if not settings.database_url:
        raise DatabaseNotConfigured("SKELDIR_DATABASE_URL is not set")
    return await _pool(
        settings,
        url or settings.database_url,
        max_size or settings.db_pool_size,
        server_settings or {},
        min_size,
    )


async def create_worker_pool(settings: Settings, *, max_size: int) -> BoundedPool:
    """The worker role's pool. Every query is planned for its own arguments: a generic plan
    cached while tables were nearly empty can pick an index that scans a whole tenant later
    (sizes tie, so the choice is arbitrary); planning each batch query costs little there."""
    if not settings.worker_database_url:
        raise DatabaseNotConfigured("SKELDIR_WORKER_DATABASE_URL is not set")
    return await _pool(
        settings,
        settings.worker_database_url,
        max_size,
        {"plan_cache_mode": "force_custom_plan"},
    )


async def _pool(
    settings: Settings, url: str, size: int, server_settings: dict[str, str], min_size: int = 2
) -> BoundedPool:
    pool = BoundedPool(
        url,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=min(min_size, size),
        max_size=size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connect=None,
        setup=None,
        init=_init_connection,
        reset=_keep_session,
        # Statements are few and fixed; caching their plans is the point of a pool.
        statement_cache_size=256,
        command_timeout=60,
        server_settings=server_settings,
    )
    pool.acquire_timeout = settings.db_acquire_timeout_seconds or None
    return await pool


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
    with _connect(settings, settings.owner_database_url, autocommit) as conn:
        yield conn


@contextmanager
def runtime_connection(settings: Settings) -> Iterator[psycopg.Connection]:
    """An autocommit connection as the runtime role, for checks of what that role may do."""
    if not settings.database_url:
        raise DatabaseNotConfigured("SKELDIR_DATABASE_URL is not set")
    with _connect(settings, settings.database_url, autocommit=True) as conn:
        yield conn


@contextmanager
def worker_connection(settings: Settings) -> Iterator[psycopg.Connection]:
    """An autocommit connection as the worker role, for checks of what that role may do."""
    if not settings.worker_database_url:
        raise DatabaseNotConfigured("SKELDIR_WORKER_DATABASE_URL is not set")
    with _connect(settings, settings.worker_database_url, autocommit=True) as conn:
        yield conn


def _connect(settings: Settings, url: str, autocommit: bool) -> psycopg.Connection:
    return psycopg.connect(
        url, autocommit=autocommit, connect_timeout=settings.db_connect_timeout_seconds
    )
