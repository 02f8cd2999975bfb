"""Learn the data-driven models' channel weights for a tenant over its lookback period.

Run on a schedule, on request and once a new tenant has enough converting journeys (those two
re-attribute too: operations.model_learning), never per webhook: a journey is a visitor's
touchpoints in the window, as channels in time order; it converted when an order was stitched
to that visitor. Each learned set of weights is a new version; recomputes use the newest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg
import orjson

from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.markov import markov_weights
from skeldir.domains.attribution.shapley import shapley_weights
from skeldir.domains.attribution.tenant_attribution import load_tenant_attribution, reclassify

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
CONVERTING_SQL = """
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
