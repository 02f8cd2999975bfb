"""The data-driven models' learned weights: read the newest version, or learn now (admin).

Learning now marks the orders of the learned window pending and schedules the tenant's chain,
so Markov and Shapley credits follow within seconds rather than at the next scheduled run.
"""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from skeldir.adapters.api.auth import Principal, require_admin, require_reader
from skeldir.adapters.api.problem_responses import problem_responses
from skeldir.adapters.api.tenant_connection import TenantConnection
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.learning import newest_weights
from skeldir.domains.attribution.models import DATA_DRIVEN_MODELS
from skeldir.operations.model_learning import learn_now

router = APIRouter(prefix="/api/attribution", tags=["attribution"])


class LearnedWeights(BaseModel):
    model: str = Field(examples=["markov"])
    version: int = Field(description="Learned versions count up from 1; the newest applies")
    learned_at: datetime
    journeys: int = Field(description="Visitors' journeys in the window it was learned from")
    conversions: int = Field(description="Of those, the journeys that ended in an order")
    weights: dict[str, float] = Field(description="Channel to weight; the weights sum to 1")


class LearnedNow(BaseModel):
    learned: list[LearnedWeights]
    first_day: date = Field(description="First UTC day of the window learned from")
    last_day: date = Field(description="Last UTC day of the window learned from")
    orders_marked: int = Field(description="Orders of those days marked for re-attribution")


def data_driven_model(
    model: str = Query(description="`markov` or `shapley`", examples=["markov"]),
) -> str:
    if model not in DATA_DRIVEN_MODELS:
        raise HTTPException(
            400, f"only {' and '.join(DATA_DRIVEN_MODELS)} learn weights; the others have rules"
        )
    return model


@router.get(
    "/weights",
    summary="The newest learned weights of a data-driven model (why Markov or Shapley credits"
    " a channel as it does)",
    response_model=LearnedWeights,
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def get_weights(
    principal: Principal = Depends(require_reader),
    model: str = Depends(data_driven_model),
    *,
    conn: TenantConnection,
) -> dict:
    found = await newest_weights(conn, principal.tenant_id, model)
    if found is None:
        raise HTTPException(404, f"no {model} weights learned yet")
    return found


@router.post(
    "/weights/learn",
    summary="Learn the Markov and Shapley weights now and re-attribute the window's orders",
    response_model=LearnedNow,
    responses=problem_responses(401, 403, 409),
)
async def learn_weights_now(
    request: Request, principal: Principal = Depends(require_admin)
) -> dict:
    pool = request.app.state.pool
    outcome = await learn_now(pool, principal.tenant_id)
    if not outcome.learned:
        raise HTTPException(409, "no converting journey in the lookback window: nothing to learn")
    if outcome.orders_marked:
        await request.app.state.schedule_chain(
            principal.tenant_id, {"tenant_id": str(principal.tenant_id), "trigger": "learned"}
        )
    async with tenant_transaction(pool, principal.tenant_id) as conn:
        learned = [await newest_weights(conn, principal.tenant_id, m) for m in DATA_DRIVEN_MODELS]
    return {
        "learned": learned,
        "first_day": outcome.first_day,
        "last_day": outcome.last_day,
        "orders_marked": outcome.orders_marked,
    }
