"""The ingestion tests name the runtime role's pool as the ingestion code does."""

from __future__ import annotations

import pytest


@pytest.fixture
def pool(runtime_pool):
    return runtime_pool
