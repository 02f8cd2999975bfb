"""The local platform server and an `Api` pointed at it, for every connector test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from ads_platform_server import PlatformServer, running_platform
from skeldir.base.config import Settings
from skeldir.domains.connectors.api import Api, platform_api


@pytest.fixture(scope="session")
def platform_server() -> Iterator[PlatformServer]:
    with running_platform() as server:
        yield server


@pytest.fixture
def platform(platform_server: PlatformServer) -> Iterator[PlatformServer]:
    platform_server.reset()
    yield platform_server
    platform_server.reset()


def platform_settings(url: str, base: Settings | None = None, **overrides) -> Settings:
    from dataclasses import replace

    return replace(
        base or Settings(),
        connector_meta_base_url=f"{url}/v23.0",
        connector_google_ads_base_url=f"{url}/v21",
        connector_google_oauth_token_url=f"{url}/token",
        connector_tiktok_base_url=f"{url}/open_api/v1.3",
        connector_timeout_seconds=5.0,
        connector_backoff_seconds=1.0,
        connector_max_wait_seconds=120.0,
        **overrides,
    )


async def _no_sleep(_seconds: float) -> None:
    """Waits are recorded by the Api (`api.waits`) and asserted; nothing sleeps."""


@pytest.fixture
def settings(platform: PlatformServer) -> Settings:
    return platform_settings(platform.url)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with platform_api(settings, sleep=_no_sleep) as opened:
        yield opened
