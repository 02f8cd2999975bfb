"""Learn the data-driven models' channel weights for a tenant over its lookback period.

Run on a schedule, on request (`learn_now`: `skeldir learn`, the admin API) and once a new
tenant has enough converting journeys (`learn_first_weights`), never per webhook: a journey is a
visitor's touchpoints in the window, as channels in time order; it converted when an order was
stitched to that visitor. Each learned set of weights is a new version; recomputes use the
newest, and learning now marks the window's orders pending so they are re-attributed with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import asyncpg
import orjson

from skeldir.attribution.markov import markov_weights
from skeldir.attribution.reattribution import mark_range_pending
from skeldir.attribution.recompute import load_tenant_attribution, reclassify
from skeldir.attribution.shapley import shapley_weights
from skeldir.db import tenant_transaction

# Touchpoints in the window classified under older rules, to classify again first.
_STALE_SQL = """
SELECT touchpoint_id, hints FROM touchpoints
WHERE tenant_id = $1 AND is_visit AND occurred_at BETWEEN $2 AND $3
  AND (rules_version IS DISTINCT FROM $4 OR channel IS NULL)
"""

# Journeys (a visitor's channels in time order) counted per distinct path and outcome: the
# database folds millions of touchpoints into the few thousand paths the models read.
_JOURNEYS_SQL = """
SELECT j.path, c.visitor_id IS NOT NULL AS converted, count(*) AS journeys
FROM (
    SELECT visitor_id, array_agg(channel ORDER BY occurred_at, touchpoint_id COLLATE "C") AS path
    FROM touchpoints
    WHERE tenant_id = $1 AND is_visit AND occurred_at BETWEEN $2 AND $3
    GROUP BY visitor_id
) AS j
LEFT JOIN (
    SELECT DISTINCT a.visitor_id FROM order_attributions a
    JOIN orders o ON o.tenant_id = a.tenant_id AND o.order_id = a.order_id
    WHERE a.tenant_id = $1 AND a.visitor_id IS NOT NULL AND o.ordered_at BETWEEN $2 AND $3
) AS c ON c.visitor_id = j.visitor_id
GROUP BY j.path, c.visitor_id IS NOT NULL
"""

# Converting journeys of the window, counted up to $4 (enough to decide, never more).
_CONVERTING_SQL = """
SELECT count(*) FROM (
    SELECT DISTINCT a.visitor_id FROM order_attributions a
    JOIN orders o ON o.tenant_id = a.tenant_id AND o.order_id = a.order_id
    WHERE a.tenant_id = $1 AND a.visitor_id IS NOT NULL AND o.ordered_at BETWEEN $2 AND $3
    LIMIT $4
) AS converting
"""

# Learners of one tenant (the schedule, a request, a first learn) take turns, so two never
# write the same next version. Two int4 keys: a space apart from the recompute's bigint locks.
_LEARN_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('skeldir.learn'), hashtext($1::text))"

_INSERT_SQL = """
INSERT INTO model_weights (tenant_id, model, version, weights, paths, conversions, window_start,
                           window_end)
SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7
FROM model_weights WHERE tenant_id = $1 AND model = $2
RETURNING version
"""


@dataclass(frozen=True)
class CountedJourneys:
    """Distinct journeys with how many visitors took each; iterates every journey, so the
    models read it as the full list without it being held in memory."""

    counted: list[tuple[tuple[tuple[str, ...], bool], int]]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.counted)

    def __iter__(self) -> Iterator[tuple[tuple[str, ...], bool]]:
        for journey, count in self.counted:
            for _ in range(count):
                yield journey


@dataclass(frozen=True)
class Learned:
    model: str
    version: int
    weights: dict[str, float]
    paths: int
    conversions: int
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class LearnedNow:
    """Weights learned on request and the orders of their window marked for re-attribution."""

    learned: list[Learned]
    first_day: date | None
    last_day: date | None
    orders_marked: int


async def learn_weights(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, *, now: datetime | None = None
) -> list[Learned]:
    end = now or datetime.now(timezone.utc)
    async with tenant_transaction(pool, tenant_id) as conn:
        await conn.execute(_LEARN_LOCK_SQL, str(tenant_id))
        tenant = await load_tenant_attribution(conn, tenant_id)
        start = end - tenant.lookback
        stale = await conn.fetch(_STALE_SQL, tenant_id, start, end, tenant.rules_version)
        await reclassify(conn, tenant_id, tenant, stale)
        paths = CountedJourneys(
            [
                ((tuple(r["path"]), r["converted"]), r["journeys"])
                for r in await conn.fetch(_JOURNEYS_SQL, tenant_id, start, end)
            ]
        )
        conversions = sum(count for (_, did), count in paths.counted if did)
        learned = []
        if not conversions:
            return learned
        for model, weights in (
            ("markov", markov_weights(paths)),
            ("shapley", shapley_weights(paths)),
        ):
            version = await conn.fetchval(
                _INSERT_SQL,
                tenant_id,
                model,
                orjson.loads(orjson.dumps(weights)),
                paths.total,
                conversions,
                start,
                end,
            )
            learned.append(
                Learned(model, version, weights, paths.total, conversions, start, end)
            )
    return learned


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
            _CONVERTING_SQL, tenant_id, start, end, min_conversions
        )
    if converting < min_conversions:
        return None
    return await learn_now(pool, tenant_id, now=end)


async def newest_weights(conn: asyncpg.Connection, tenant_id: uuid.UUID, model: str) -> dict | None:
    """The newest learned version of `model`, as the API shows it; None before the first."""
    row = await conn.fetchrow(
        "SELECT version, learned_at, paths, conversions, weights FROM model_weights"
        " WHERE tenant_id = $1 AND model = $2 ORDER BY version DESC LIMIT 1",
        tenant_id,
        model,
    )
    if row is None:
        return None
    return {
        "model": model,
        "version": row["version"],
        "learned_at": row["learned_at"],
        "journeys": row["paths"],
        "conversions": row["conversions"],
        "weights": row["weights"],
    }
