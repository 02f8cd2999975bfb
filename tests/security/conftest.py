"""Fixtures for the security checks: tenants, the runtime role's pool, the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from db_helpers import create_tenant
from starlette.testclient import TestClient

from skeldir.adapters.app import create_app
from skeldir.base.config import Settings
from skeldir.base.db import create_pool


@pytest.fixture
def tenant_factory(database: Settings):
    return lambda name="shop": create_tenant(database, name)


@pytest.fixture
async def runtime_pool(database: Settings) -> AsyncIterator:
    pool = await create_pool(database, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def client(database: Settings) -> Iterator[TestClient]:
    """The API in process; chains are published to an in-memory broker nobody consumes."""
    with TestClient(create_app(replace(database, broker_url="memory://"))) as test_client:
        yield test_client
