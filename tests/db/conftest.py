"""Fixtures for tests on real PostgreSQL: tenants with a Shopify source, the runtime pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from db_helpers import create_tenant

from skeldir.base.config import Settings
from skeldir.base.db import create_pool


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
