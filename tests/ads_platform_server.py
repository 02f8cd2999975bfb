"""A local HTTP server that stands in for an ad platform, and the shared real responses.

Tests script what each path answers (`PlatformServer.on`) and read back every request it got
(method, path, query, headers, form or JSON body). It listens on a free port above 61000 in a
thread of its own; the connectors reach it through their base-URL settings, as they would a
proxy. Real platform bodies are read from ../shared/fixtures/ads, never copied here.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from skeldir.base.config import Settings

SHARED_ADS_FIXTURES = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "ads"
).resolve()


def ads_fixture(platform: str, name: str) -> bytes:
    """The bytes of a real `platform` response; skips the test when the folder is absent."""
    path = SHARED_ADS_FIXTURES / platform / name
    if not path.is_file():
        pytest.skip(f"shared ad-platform fixture not found at {path}")
    return path.read_bytes()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict | list = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds the server waits before answering (a platform that hangs).
    delay: float = 0.0


Handler = Callable[[Seen], Reply]


def replies(*answers: Reply | Handler) -> Handler:
    """A handler answering with `answers` in turn, the last one for every later request."""
    queue = deque(answers)

    def answer(seen: Seen) -> Reply:
        current = queue.popleft() if len(queue) > 1 else queue[0]
        return current(seen) if callable(current) else current

    return answer


class PlatformServer:
    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Handler] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, method: str, path: str, *answers: Reply | Handler) -> None:
        self.handlers[(method, path)] = replies(*answers)

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and (path is None or r.path == path)]

    def reset(self) -> None:
        with self._lock:
            self.handlers.clear()
            self.requests.clear()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        seen = Seen(request.method, request.url.path, dict(request.query_params),
                    {k.lower(): v for k, v in request.headers.items()}, await request.body())
        with self._lock:
            self.requests.append(seen)
            handler = self.handlers.get((seen.method, seen.path))
        reply = handler(seen) if handler else Reply(404, {"error": f"no route {seen.path}"})
        if reply.delay:
            await asyncio.sleep(reply.delay)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        await Response(body, reply.status, reply.headers, media_type="application/json")(
            scope, receive, send)


def _free_socket() -> socket.socket:
    for port in random.sample(range(61000, 65000), 200):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        return sock
    raise RuntimeError("no free port between 61000 and 65000")


@contextmanager
def running_platform() -> Iterator[PlatformServer]:
    platform = PlatformServer()
    sock = _free_socket()
    platform.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(platform, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the platform server did not start on port {platform.port}")
        time.sleep(0.01)
    try:
        yield platform
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def platform_server() -> Iterator[PlatformServer]:
    """One local platform for the session (import this fixture and `platform` where needed)."""
    with running_platform() as server:
        yield server


@pytest.fixture
def platform(platform_server: PlatformServer) -> Iterator[PlatformServer]:
    """The local platform with no route scripted and no request seen."""
    platform_server.reset()
    yield platform_server
    platform_server.reset()


def platform_settings(url: str, base: Settings | None = None, **overrides) -> Settings:
    """`base` with every platform's base URL at the local server, short timeouts and waits."""
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
