"""Rate limits shared through Redis: several processes admit the rate together, and a Redis
that is gone or stalled degrades to per-process limits instead of refusing traffic."""

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from skeldir.base.config import Settings
from skeldir.base.http.rate_limits import WEBHOOKS, TenantRateLimits
from skeldir.base.observability import metrics
from skeldir.embedded.redis import REDIS_SERVER


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", str(self.socket), "--save", "",
             "--appendonly", "no", "--dir", str(directory)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING within 10 s"
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _answers(self) -> bool:
        try:
            with redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1) as client:
                return bool(client.ping())
        except (redis.ConnectionError, FileNotFoundError):
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def api_process(url: str, clock=time.monotonic, **limits) -> TenantRateLimits:
    """One API process's limits: its own buckets, the deployment's Redis."""
    settings = Settings(
        rate_limit_redis_url=url,
        rate_limit_webhooks_per_second=limits.get("rate", 0.001),
        rate_limit_webhooks_burst=limits.get("burst", 10),
    )
    return TenantRateLimits.from_settings(settings, clock=clock)


async def admitted(processes: list[TenantRateLimits], tenant, attempts: int) -> int:
    waits = [await processes[i % len(processes)].acquire(WEBHOOKS, tenant) for i in range(attempts)]
    return sum(1 for wait in waits if wait == 0)


def test_two_processes_admit_one_burst_together(redis_server):
    async def scenario():
        processes = [api_process(redis_server.url), api_process(redis_server.url)]
        tenant, neighbour = uuid.uuid4(), uuid.uuid4()
        try:
            assert await admitted(processes, tenant, 30) == 10, "one burst across both processes"
            assert await admitted(processes, neighbour, 4) == 4, "the neighbour has its own bucket"
            wait = await processes[0].acquire(WEBHOOKS, tenant)
            assert wait > 0, "the flooding tenant is told to wait"
        finally:
            for process in processes:
                await process.close()

    asyncio.run(scenario())


def test_without_redis_each_process_limits_alone(redis_server):
    async def scenario():
        processes = [api_process(None), api_process(None)]
        assert await admitted(processes, uuid.uuid4(), 30) == 20

    asyncio.run(scenario())


def test_a_redis_that_is_gone_degrades_to_per_process_limits_then_is_asked_again(redis_server):
    now = [1000.0]

    async def scenario():
        process = api_process(redis_server.url, clock=lambda: now[0])
        tenant = uuid.uuid4()
        try:
            assert await admitted([process], tenant, 3) == 3
            redis_server.stop()
            before = metrics.RATE_LIMIT_FALLBACKS._value.get()
            # The process's own bucket is full: nothing is refused because Redis is gone.
            assert await admitted([process], tenant, 10) == 10
            assert metrics.RATE_LIMIT_FALLBACKS._value.get() == before + 1, (
                "one failure, then Redis is left alone for the pause"
            )
            now[0] += 5.1
            assert await admitted([process], tenant, 1) == 0, "local bucket now empty"
            assert metrics.RATE_LIMIT_FALLBACKS._value.get() == before + 2, "Redis asked again"
        finally:
            await process.close()

    asyncio.run(scenario())


def test_a_stalled_redis_costs_one_timeout_not_a_refusal(redis_server):
    async def scenario():
        process = api_process(redis_server.url)
        tenant = uuid.uuid4()
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert await process.acquire(WEBHOOKS, tenant) == 0
            assert await process.acquire(WEBHOOKS, tenant) == 0
            elapsed = time.monotonic() - started
            # One timeout of 50 ms (connect) at most, then the pause skips Redis.
            assert elapsed < 1.0, f"a stalled Redis held requests for {elapsed:.2f} s"
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
            await process.close()

    asyncio.run(scenario())
