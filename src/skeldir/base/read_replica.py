"""Reads sent to a PostgreSQL streaming replica while it keeps up, to the primary otherwise.

Reports, exports and listings read through `ReadPools.pool`; writes, the webhook path and key
checks always use the primary. A check every `check_seconds` reads the primary's WAL position
and then the replica's replayed position: the replica's lag is the time since the primary last
held nothing the replica has not replayed (0 when it has replayed the latest), overestimated by
at most one check interval, never under. A replica that does not answer, is not a standby, or
lags more than `max_lag_seconds` is left out until a later check finds it caught up, so a
report read from it is never older than that bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from skeldir.base.db import DATABASE_UNAVAILABLE_ERRORS, SET_TENANT_SQL

log = logging.getLogger(__name__)

_PRIMARY_POSITION_SQL = "SELECT pg_current_wal_lsn()::text"
_REPLICA_POSITION_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"


def wal_position(lsn: str) -> int:
    """A WAL position (`16/B374D848`) as a byte offset."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True, slots=True)
class ReplicaState:
    serving_reads: bool
    lag_seconds: float | None
    lag_bytes: int | None
    reason: str | None

    def as_dict(self) -> dict:
        return {
            "configured": True,
            "serving_reads": self.serving_reads,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "lag_bytes": self.lag_bytes,
            "reason": self.reason,
        }


_NOT_CHECKED = ReplicaState(False, None, None, "not checked yet")


async def _begin_on(pool: asyncpg.Pool, tenant_id: uuid.UUID | str):
    """A connection of `pool` in a read-only transaction of `tenant_id`, and the transaction."""
    conn = await pool.acquire()
    transaction = conn.transaction(readonly=True)
    try:
        await transaction.start()
        await conn.execute(SET_TENANT_SQL, str(tenant_id))
    except BaseException:
        # Pooled connections are released without a reset (base/db.py): none may keep an
        # open transaction.
        if conn.is_in_transaction():
            with contextlib.suppress(*DATABASE_UNAVAILABLE_ERRORS):
                await transaction.rollback()
        await pool.release(conn)
        raise
    return conn, transaction


class ReadPools:
    """The pool a read should use: the replica's while it keeps up, else the primary's."""

    def __init__(
        self,
        primary: asyncpg.Pool,
        replica: asyncpg.Pool | None = None,
        *,
        max_lag_seconds: float = 2.0,
        check_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.max_lag_seconds = max_lag_seconds
        self.check_seconds = check_seconds
        self._clock = clock
        # (when, primary position) of recent checks, oldest first: enough to date a replayed
        # position up to the lag bound.
        self._positions: deque[tuple[float, int]] = deque()
        self.state = _NOT_CHECKED
        self._checker: asyncio.Task | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self.replica is not None and self.state.serving_reads:
            return self.replica
        return self.primary

    @asynccontextmanager
    async def tenant_transaction(
        self, tenant_id: uuid.UUID | str
    ) -> AsyncIterator[asyncpg.Connection]:
        """A read-only tenant transaction: on the replica while it serves, on the primary when
        it does not, or when it fails before the first statement (it died since the last
        check: it is left out at once rather than at the next check)."""
        pool, conn, transaction = await self._begin(tenant_id)
        try:
            yield conn
        except BaseException:
            # A connection that died takes its transaction along; the first error is the one
            # that matters.
            with contextlib.suppress(*DATABASE_UNAVAILABLE_ERRORS):
                await transaction.rollback()
            raise
        else:
            await transaction.commit()
        finally:
            await pool.release(conn)

    async def _begin(self, tenant_id: uuid.UUID | str):
        pool = self.pool
        if pool is self.replica:
            try:
                return pool, *await _begin_on(pool, tenant_id)
            except DATABASE_UNAVAILABLE_ERRORS as error:
                await self._left_out(error)
        return self.primary, *await _begin_on(self.primary, tenant_id)

    async def _left_out(self, error: BaseException) -> None:
        # Its pooled connections died with it (a restart, a failover): replaced at their next
        # use, so reads that come back to it do not meet a dead one.
        await self.replica.expire_connections()
        reason = f"unreachable: {type(error).__name__}"
        self._decide(ReplicaState(False, None, None, reason))

    def status(self) -> dict:
        if self.replica is None:
            return {"configured": False, "serving_reads": False}
        return self.state.as_dict()

    async def start(self) -> None:
        if self.replica is None:
            return
        await self.check()
        self._checker = asyncio.create_task(self._check_forever(), name="read-replica-check")

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            try:
                await self._checker
            except asyncio.CancelledError:
                pass
        if self.replica is not None:
            await self.replica.close()

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.check()
            except Exception:  # a check must never end the loop that keeps reads correct
                log.exception("read_replica_check_failed")
                self.state = ReplicaState(False, None, None, "check failed")

    async def check(self) -> ReplicaState:
        """Measure the replica's lag now and decide whether it serves reads."""
        assert self.replica is not None
        try:
            primary_position = wal_position(await self.primary.fetchval(_PRIMARY_POSITION_SQL))
        except DATABASE_UNAVAILABLE_ERRORS:
            # Without the primary there is nothing to compare with: keep the last decision.
            return self.state
        now = self._clock()
        self._positions.append((now, primary_position))
        try:
            in_recovery, replayed = await self.replica.fetchrow(_REPLICA_POSITION_SQL)
        except DATABASE_UNAVAILABLE_ERRORS as error:
            await self._left_out(error)
            return self.state
        if not in_recovery or replayed is None:
            return self._decide(ReplicaState(False, None, None, "not a standby"))
        replayed_position = wal_position(replayed)
        lag_bytes = max(0, primary_position - replayed_position)
        lag = 0.0 if lag_bytes == 0 else self._age_of(replayed_position, now)
        # Positions older than the newest one the replica has replayed date nothing any more.
        while len(self._positions) > 1 and self._positions[1][1] <= replayed_position:
            self._positions.popleft()
        serving = lag <= self.max_lag_seconds
        return self._decide(
            ReplicaState(serving, lag, lag_bytes, None if serving else "lagging beyond the bound")
        )

    def _age_of(self, replayed_position: int, now: float) -> float:
        """Seconds since the last check at which the primary had nothing the replica has not
        replayed yet: the replica's data is at most this old (an overestimate by at most one
        check interval). Without such a check, since the oldest check remembered."""
        caught_up_at = self._positions[0][0]
        for seen_at, position in self._positions:
            if position > replayed_position:
                break
            caught_up_at = seen_at
        return now - caught_up_at

    def _decide(self, state: ReplicaState) -> ReplicaState:
        if state.serving_reads != self.state.serving_reads and self.state is not _NOT_CHECKED:
            log.warning(
                "read_replica_serving" if state.serving_reads else "read_replica_left_out",
                extra={"lag_seconds": state.lag_seconds, "reason": state.reason},
            )
        self.state = state
        return state
