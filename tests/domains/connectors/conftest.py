"""The local platform server and an `Api` pointed at it, for every connector test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ads_platform_server import platform, platform_server, platform_settings  # noqa: F401
from skeldir.base.config import Settings
from skeldir.domains.connectors.api import Api, platform_api


async def _no_sleep(_seconds: float) -> None:
    """Waits are recorded by the Api (`api.waits`) and asserted; nothing sleeps."""


@pytest.fixture
def settings(platform) -> Settings:  # noqa: F811
    return platform_settings(platform.url)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with platform_api(settings, sleep=_no_sleep) as opened:
        yield opened
