"""Token buckets kept in Redis, so that every API process of a deployment shares one per tenant.

One script call per request: Redis runs it atomically, with its own clock, so N processes on N
hosts admit the configured rate together, not N times it, and no host's clock matters.

Redis is a guard here, never a gate: when it does not answer within its timeout, the caller
falls back to its per-process buckets (a warning says so) and tries Redis again after a pause,
so an outage never refuses a webhook that a single process would have admitted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Hashable

import redis.asyncio as redis
from redis.exceptions import RedisError

from skeldir.base.observability import metrics

log = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: rate per second, burst. Returns the seconds to wait (0 = taken) as
# a string, because Redis truncates a Lua number reply to an integer.
_TAKE_TOKEN = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1])
local at = tonumber(bucket[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
-- A bucket that has refilled completely is the same as none: let Redis forget it.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class SharedTokenBuckets:
    """The deployment's buckets in one Redis, by kind of traffic and tenant."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        timeout_seconds: float,
        retry_after_failure_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._take = self._client.register_script(_TAKE_TOKEN)
        self._prefix = f"{namespace}:rate:"
        self._pause = retry_after_failure_seconds
        self._clock = clock
        self._unavailable_until = 0.0

    async def acquire(self, kind: str, rate: float, burst: float, key: Hashable) -> float | None:
        """Seconds to wait (0.0 when a token was taken), or None while Redis is unavailable."""
        if self._clock() < self._unavailable_until:
            return None
        bucket = f"{self._prefix}{kind}:{key.hex if isinstance(key, uuid.UUID) else key}"
        try:
            return float(await self._take(keys=[bucket], args=[rate, max(1.0, burst)]))
        except (RedisError, OSError) as error:
            self._unavailable_until = self._clock() + self._pause
            metrics.RATE_LIMIT_FALLBACKS.inc()
            log.warning(
                "shared_rate_limits_unavailable",
                extra={"error": type(error).__name__, "retry_in_seconds": self._pause},
            )
            return None

    async def close(self) -> None:
        await self._client.aclose()
