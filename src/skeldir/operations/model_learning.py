"""Learn the data-driven models' weights now and re-attribute the learned window's orders:
`skeldir learn`, the admin API, and a new tenant's first weights once it has enough converting
journeys. Learning itself is the attribution domain's (domains.attribution.learning)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.learning import CONVERTING_SQL, Learned, learn_weights
from skeldir.operations.reattribution import mark_range_pending


@dataclass(frozen=True)
class LearnedNow:
    """Weights learned on request and the orders of their window marked for re-attribution."""

    learned: list[Learned]
    first_day: date | None
    last_day: date | None
    orders_marked: int


async def learn_now(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    *,
    now: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> LearnedNow:
    """Learn the weights now and mark the orders of the learned window pending, so the chain
    (or the sweeper) re-attributes them with the new version. Nothing is marked when there was
    no converting journey to learn from."""
    learned = await learn_weights(pool, tenant_id, now=now)
    if not learned:
        return LearnedNow([], None, None, 0)
    first_day, last_day = learned[0].window_start.date(), learned[0].window_end.date()
    marked = await mark_range_pending(pool, tenant_id, first_day, last_day, on_batch=on_batch)
    return LearnedNow(learned, first_day, last_day, marked)


async def learn_first_weights(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, *, min_conversions: int
) -> LearnedNow | None:
    """A tenant's first weights, as soon as its window holds `min_conversions` converting
    journeys (None before that, and once any weights exist: the schedule learns the next)."""
    end = datetime.now(timezone.utc)
    async with tenant_transaction(pool, tenant_id) as conn:
        if await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM model_weights WHERE tenant_id = $1)", tenant_id
        ):
            return None
        lookback_days = await conn.fetchval(
            "SELECT lookback_days FROM tenants WHERE tenant_id = $1", tenant_id
        )
        start = end - timedelta(days=lookback_days)
        converting = await conn.fetchval(
            CONVERTING_SQL, tenant_id, start, end, min_conversions
        )
    if converting < min_conversions:
        return None
    return await learn_now(pool, tenant_id, now=end)
