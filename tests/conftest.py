"""Shared fixtures: a real PostgreSQL (embedded, or the one in SKELDIR_TEST_ADMIN_URL), a
fresh, migrated database with its own owner, runtime and worker roles for this test session,
tenants with a Shopify source and the runtime and worker roles' pools."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from databases import new_roles
from db_helpers import create_tenant
from skeldir.adapters.app import create_app
from skeldir.base.config import Settings
from skeldir.base.crypto import new_secret_key
from skeldir.base.db import create_pool, create_worker_pool
from skeldir.deployment import migrate
from skeldir.deployment.provision import drop, provision, role_url
from skeldir.embedded.postgres import EmbeddedPostgres


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Database tests sit beside the code they test, so a path cannot select them; the fixture can.
    for item in items:
        if "database" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A superuser URL: the machine's server when given, else an embedded one for the session."""
    given = os.environ.get("SKELDIR_TEST_ADMIN_URL")
    if given:
        yield given
        return
    # mkdtemp under /tmp: when run as root the server's own user must be able to reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="skt-pg-"))
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        yield server.dsn()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database(admin_url: str) -> Iterator[Settings]:
    """Settings for a migrated database of this session; dropped at the end."""
    roles = new_roles()
    provision(admin_url, roles)
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="skt-data-")),
        owner_database_url=role_url(admin_url, roles.database, roles.owner),
        database_url=role_url(admin_url, roles.database, roles.runtime),
        worker_database_url=role_url(admin_url, roles.database, roles.worker),
        secret_key=new_secret_key(),
    )
    migrate.upgrade(settings)
    try:
        yield settings
    finally:
        drop(admin_url, roles)
        shutil.rmtree(settings.data_dir, ignore_errors=True)


@pytest.fixture
def tenant_factory(database: Settings):
    return lambda name="shop": create_tenant(database, name)


@pytest.fixture
async def runtime_pool(database: Settings) -> AsyncIterator:
    pool = await create_pool(database, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def worker_pool(database: Settings) -> AsyncIterator:
    """A pool of the worker role, for what the worker runs (recompute jobs, the schedules)."""
    pool = await create_worker_pool(database, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def client(database: Settings) -> Iterator[TestClient]:
    """The API in process; chains are published to an in-memory broker nobody consumes."""
    with TestClient(create_app(replace(database, broker_url="memory://"))) as test_client:
        yield test_client
