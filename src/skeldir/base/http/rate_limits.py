"""Per-tenant rate limits: token buckets, so that one tenant's flood cannot starve the others.

Each tenant has one bucket per kind of traffic (webhooks, touchpoints, the keyed API). A request takes a
token; tokens come back at `rate` per second up to `burst`. With `SKELDIR_RATE_LIMIT_REDIS_URL`
the buckets live in Redis and N processes behind a load balancer admit the rate together
(`shared_rate_limits`); without it, or while that Redis does not answer, each process keeps its
own and N processes admit up to N times the rate.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request
from starlette.responses import JSONResponse

from skeldir.base.config import Settings
from skeldir.base.http.problems import problem
from skeldir.base.http.shared_rate_limits import SharedTokenBuckets
from skeldir.base.observability import metrics

WEBHOOKS = "webhooks"
# Touchpoints come from shoppers' page views with the public collect key: a bucket of their
# own with limits of their own, so a busy shop's pages (or anyone who copied that key) neither
# meet the API's limit nor starve its webhooks.
COLLECT = "collect"
API = "api"
# More tenants than this in one process's memory evicts the least recently seen first.
MAX_TRACKED_TENANTS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at: float


class TokenBuckets:
    """One token bucket per key. A rate of 0 or less means no limit.

    A bucket left alone long enough to refill completely is the same as a new one, so it is
    forgotten: memory follows the tenants active in the last `burst / rate` seconds. Only past
    `max_keys` such tenants is a partly drained bucket forgotten (and its tenant gets a full one).
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_TRACKED_TENANTS,
    ) -> None:
        self.rate = rate
        # At least one token, or no request could ever pass.
        self.burst = max(1.0, burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()

    def acquire(self, key: Hashable) -> float:
        """Take a token for `key`: 0.0 when taken, else the seconds until one will be there."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            # A clock that steps back neither adds tokens nor moves the bucket's time back.
            elapsed = max(0.0, now - bucket.updated_at)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated_at = max(bucket.updated_at, now)
        self._buckets[key] = bucket
        self._forget_idle(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_idle(self, now: float) -> None:
        # Least recently used first: stop at the first bucket that has not refilled yet.
        refill_seconds = self.burst / self.rate
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if now - oldest.updated_at < refill_seconds and len(self._buckets) <= self._max_keys:
                break
            del self._buckets[key]


@dataclass(frozen=True)
class TenantRateLimits:
    """The API process's buckets, by kind of traffic, and the deployment's shared ones if any."""

    buckets: Mapping[str, TokenBuckets]
    shared: SharedTokenBuckets | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> TenantRateLimits:
        limits = {
            WEBHOOKS: (settings.rate_limit_webhooks_per_second, settings.rate_limit_webhooks_burst),
            COLLECT: (settings.rate_limit_collect_per_second, settings.rate_limit_collect_burst),
            API: (settings.rate_limit_api_per_second, settings.rate_limit_api_burst),
        }
        shared = None
        if settings.rate_limit_redis_url:
            shared = SharedTokenBuckets(
                settings.rate_limit_redis_url,
                namespace=settings.queue_namespace,
                timeout_seconds=settings.rate_limit_redis_timeout_seconds,
                retry_after_failure_seconds=settings.rate_limit_redis_retry_seconds,
                clock=clock,
            )
        return cls(
            {kind: TokenBuckets(rate, burst, clock=clock) for kind, (rate, burst) in limits.items()},
            shared,
        )

    async def acquire(self, kind: str, key: Hashable) -> float:
        """Take a token of `kind` for `key`: 0.0 when taken, else the seconds until one will be."""
        local = self.buckets[kind]
        if local.rate <= 0:
            return 0.0
        if self.shared is not None:
            wait = await self.shared.acquire(kind, local.rate, local.burst, key)
            if wait is not None:
                return wait
        return local.acquire(key)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


async def _retry_after(request: Request, kind: str, tenant_id: Hashable) -> int | None:
    """None when the tenant may go on; else whole seconds (at least 1) until it may, counted."""
    wait = await request.app.state.rate_limits.acquire(kind, tenant_id)
    if wait <= 0:
        return None
    metrics.RATE_LIMITED.labels(kind=kind).inc()
    return max(1, math.ceil(wait))


def _detail(kind: str) -> str:
    return f"this tenant's {kind} rate limit is reached; retry after the Retry-After seconds"


async def refusal(
    request: Request, kind: str, tenant_id: Hashable
) -> JSONResponse | None:
    """None when the tenant may go on; else the 429 problem+json response, with Retry-After."""
    seconds = await _retry_after(request, kind, tenant_id)
    if seconds is None:
        return None
    return problem(429, "Too many requests", _detail(kind), retry_after=seconds)


async def enforce(
    request: Request, kind: str, tenant_id: Hashable, headers: dict | None = None
) -> None:
    """Raise a 429 (with Retry-After and `headers`) when the tenant is over its limit."""
    seconds = await _retry_after(request, kind, tenant_id)
    if seconds is not None:
        raise HTTPException(
            429, _detail(kind), headers={**(headers or {}), "Retry-After": str(seconds)}
        )
