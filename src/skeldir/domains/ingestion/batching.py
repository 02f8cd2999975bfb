"""Group commit for webhook ingests: concurrent requests share one round trip and one commit.

A request hands its event to the batcher and waits for its own result. While fewer than
`max_in_flight` batches are at the database, whatever has arrived goes out at once (after
`max_wait` at most, when a linger is set); while they are busy, arrivals gather into the next
batch. So a lone webhook pays one round trip as before, and under load the cost of the round
trip, the commit and its WAL flush is shared by up to `max_batch` events. A 200 still means
committed: nobody's result is set before the batch's transaction has committed.

A batch is one transaction, so one event that fails would fail its neighbours: when a batch
fails for a reason tied to its data, each of its events is retried alone and its caller gets
that outcome. When the database is unreachable, every caller of the batch gets that error.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from skeldir.base.db import DATABASE_UNAVAILABLE_ERRORS
from skeldir.domains.ingestion.inbox import IngestArguments, IngestResult, ingest_many, ingest_one

_Waiting = tuple[IngestArguments, asyncio.Future]


def worth_retrying_alone(exc: Exception) -> bool:
    """True when the batch may have failed for what one of its events holds (a value the
    ledger refuses, a deadlock with another batch), not because the server is away."""
    if isinstance(exc, asyncpg.DataError):  # an argument the client could not encode
        return True
    return not isinstance(exc, DATABASE_UNAVAILABLE_ERRORS)


class IngestBatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        chain_stale: timedelta,
        *,
        max_batch: int,
        max_wait: float = 0.0,
        max_in_flight: int = 2,
    ) -> None:
        self._pool = pool
        self._chain_stale = chain_stale
        self._max_batch = max(1, max_batch)
        self._max_wait = max(0.0, max_wait)
        self._max_in_flight = max(1, max_in_flight)
        self._waiting: list[_Waiting] = []
        self._in_flight: set[asyncio.Task] = set()
        self._flush_scheduled: asyncio.Handle | None = None

    async def ingest(self, event: IngestArguments) -> IngestResult:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        if len(self._waiting) >= self._max_batch:
            self._flush()
        else:
            self._schedule_flush()
        return await future

    def _schedule_flush(self) -> None:
        if self._flush_scheduled is not None or len(self._in_flight) >= self._max_in_flight:
            return  # a flush is due, or a finishing batch will send what gathered meanwhile
        loop = asyncio.get_running_loop()
        # call_soon still lets the requests that became ready in this turn of the loop join.
        self._flush_scheduled = (
            loop.call_later(self._max_wait, self._flush)
            if self._max_wait
            else loop.call_soon(self._flush)
        )

    def _flush(self) -> None:
        if self._flush_scheduled is not None:
            self._flush_scheduled.cancel()
            self._flush_scheduled = None
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            task = asyncio.get_running_loop().create_task(self._store(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        if self._waiting:
            self._flush()

    async def _store(self, batch: list[_Waiting]) -> None:
        try:
            events = [event for event, _ in batch]
            results = await ingest_many(self._pool, events, self._chain_stale)
        except Exception as exc:
            if len(batch) > 1 and worth_retrying_alone(exc):
                await asyncio.gather(*(self._store_alone(event, future) for event, future in batch))
            else:
                for _, future in batch:
                    _settle(future, exception=exc)
            return
        except BaseException as exc:  # cancelled at shutdown: nobody may believe it stored
            for _, future in batch:
                _settle(future, exception=exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def _store_alone(self, event: IngestArguments, future: asyncio.Future) -> None:
        try:
            result = await ingest_one(self._pool, event, self._chain_stale)
        except Exception as exc:
            _settle(future, exception=exc)
        else:
            _settle(future, result=result)

    async def close(self) -> None:
        """Send what is waiting and wait for every batch (call once requests have stopped)."""
        while self._waiting or self._in_flight:
            self._flush()
            await asyncio.gather(*self._in_flight, return_exceptions=True)


def _settle(
    future: asyncio.Future,
    *,
    result: IngestResult | None = None,
    exception: BaseException | None = None,
) -> None:
    if future.done():  # its request was cancelled; the event is stored all the same
        return
    if isinstance(exception, asyncio.CancelledError):
        future.cancel()
    elif exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
