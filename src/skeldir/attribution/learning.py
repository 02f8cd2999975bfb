"""Learn the data-driven models' channel weights for a tenant over its lookback period.

Run on a schedule, never per webhook: a journey is a visitor's touchpoints in the window, as
channels in time order; it converted when an order was stitched to that visitor. Each learned
set of weights is a new version; recomputes use the newest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg
import orjson

from skeldir.attribution.markov import markov_weights
from skeldir.attribution.recompute import load_tenant_attribution
from skeldir.attribution.shapley import shapley_weights
from skeldir.db import tenant_transaction
from skeldir.ingestion.hints import hints_from_document

_JOURNEYS_SQL = """
SELECT visitor_id, hints FROM touchpoints
WHERE tenant_id = $1 AND is_visit AND occurred_at BETWEEN $2 AND $3
ORDER BY visitor_id, occurred_at, touchpoint_id
"""

_CONVERTED_SQL = """
SELECT DISTINCT a.visitor_id FROM order_attributions a
JOIN orders o ON o.tenant_id = a.tenant_id AND o.order_id = a.order_id
WHERE a.tenant_id = $1 AND a.visitor_id IS NOT NULL AND o.ordered_at BETWEEN $2 AND $3
"""

_INSERT_SQL = """
INSERT INTO model_weights (tenant_id, model, version, weights, paths, conversions, window_start,
                           window_end)
SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7
FROM model_weights WHERE tenant_id = $1 AND model = $2
RETURNING version
"""


@dataclass(frozen=True)
class Learned:
    model: str
    version: int
    weights: dict[str, float]
    paths: int
    conversions: int


async def learn_weights(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, *, now: datetime | None = None
) -> list[Learned]:
    end = now or datetime.now(timezone.utc)
    async with tenant_transaction(pool, tenant_id) as conn:
        tenant = await load_tenant_attribution(conn, tenant_id)
        start = end - tenant.lookback
        journeys: dict[str, list[str]] = {}
        for row in await conn.fetch(_JOURNEYS_SQL, tenant_id, start, end):
            journeys.setdefault(row["visitor_id"], []).append(
                tenant.classify(hints_from_document(row["hints"]))
            )
        converted = {r[0] for r in await conn.fetch(_CONVERTED_SQL, tenant_id, start, end)}
        paths = [(channels, visitor in converted) for visitor, channels in journeys.items()]
        conversions = sum(1 for _, did in paths if did)
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
                len(paths),
                conversions,
                start,
                end,
            )
            learned.append(Learned(model, version, weights, len(paths), conversions))
    return learned
