"""Calls to a platform's HTTP API: a timeout on every call, retries with backoff, and the
pauses the platform's throttling signals ask for.

A connector hands each call a `check` that turns the response into its JSON body or raises one
of the `platform` errors, and may hand a `pace` that reads usage headers on a good answer and
says how long to wait before the next call. A throttled call waits for the delay the platform
gives (else backs off exponentially) when that is at most `max_wait` seconds; a longer delay
ends the pull (the next scheduled pull tries again) instead of holding a worker for hours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from skeldir.base.config import Settings
from skeldir.domains.connectors.platform import (
    ConnectorError,
    PlatformError,
    Throttled,
    Transient,
)

# httpx logs every request line at INFO, and Meta's and TikTok's URLs can carry a token.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

Check = Callable[[httpx.Response], Any]
Pace = Callable[[httpx.Response], float]


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings
    # Injected so that tests record the waits instead of sleeping through them.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    waits: list[float] = field(default_factory=list)
    _pause: float = 0.0

    @property
    def attempts(self) -> int:
        return max(1, self.settings.connector_attempts)

    async def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.waits.append(seconds)
            await self.sleep(seconds)

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1, 2, ...): doubling, capped at max_wait."""
        return min(self.settings.connector_backoff_seconds * 2 ** (attempt - 1),
                   self.settings.connector_max_wait_seconds)

    async def call(self, method: str, url: str, *, check: Check, pace: Pace | None = None,
                   **request: Any) -> Any:
        """The checked body of one request, retried on transient faults and throttling."""
        for attempt in range(1, self.attempts + 1):
            await self.wait(self._pause)
            self._pause = 0.0
            try:
                try:
                    response = await self.client.request(method, url, **request)
                except httpx.TimeoutException:
                    raise Transient("the platform did not answer in time") from None
                except httpx.TransportError as exc:
                    # The exception's text may name the URL, which may carry a token.
                    raise Transient(f"connection failed ({type(exc).__name__})") from None
                body = check(response)
            except Throttled as exc:
                delay = exc.retry_after if exc.retry_after is not None else self.backoff(attempt)
                if attempt == self.attempts or delay > self.settings.connector_max_wait_seconds:
                    raise
                await self.wait(delay)
                continue
            except Transient:
                if attempt == self.attempts:
                    raise
                await self.wait(self.backoff(attempt))
                continue
            if pace is not None:
                self._pause = min(pace(response), self.settings.connector_max_wait_seconds)
            return body
        raise ConnectorError("no attempt was made")  # unreachable: attempts >= 1


def json_body(response: httpx.Response) -> Any:
    """The response's JSON; a body that is not JSON is transient on a 5xx, else an error."""
    try:
        return response.json()
    except ValueError:
        if response.status_code >= 500:
            raise Transient(f"HTTP {response.status_code} without a JSON body") from None
        raise PlatformError(f"HTTP {response.status_code} without a JSON body") from None


@asynccontextmanager
async def platform_api(settings: Settings, *,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                       ) -> AsyncIterator[Api]:
    """An `Api` whose every call has the settings' timeout (connect, read, write and pool)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(settings.connector_timeout_seconds),
                                 follow_redirects=False) as client:
        yield Api(client, settings, sleep=sleep)
