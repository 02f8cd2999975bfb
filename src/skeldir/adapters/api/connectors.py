"""Spend connectors over HTTP (admin key): connect an ad account, list, remove, backfill.

Credentials are accepted here and never answered back: responses carry the connector's ids,
status and backfill only. A backfill asked here is recorded and pulled by the worker, a chunk
at a time (`skeldir connector backfill` pulls it in the foreground instead).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from skeldir.adapters.api.auth import Principal, require_admin
from skeldir.adapters.api.problem_responses import ADMIN_ERRORS, problem_responses
from skeldir.base.db import tenant_transaction
from skeldir.domains.connectors import store
from skeldir.domains.connectors.registry import CONNECTORS

router = APIRouter(prefix="/api/connectors", tags=["connectors"], responses=ADMIN_ERRORS)


class NewConnector(BaseModel):
    platform: str = Field(description=f"One of {', '.join(CONNECTORS)}", examples=["meta"])
    account_id: str = Field(max_length=200, examples=["act_123"])
    credentials: dict[str, str] = Field(
        description="The platform's credentials (docs/connectors.md); never shown again",
        examples=[{"access_token": "EAAB..."}])


class BackfillRange(BaseModel):
    start: date = Field(alias="from", examples=["2026-09-01"])
    end: date = Field(alias="to", examples=["2026-11-30"])


class BackfillInfo(BaseModel):
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    next: str | None = Field(description="The next day to pull; null when done")
    done: bool


class ConnectorInfo(BaseModel):
    connector_id: str
    platform: str
    account_id: str
    status: str = Field(description="pending (never pulled), ok, needs_reauth or error")
    last_error: str | None
    last_pull_at: str | None
    last_success_at: str | None
    lag_seconds: float | None = Field(description="Seconds since the last successful pull")
    backfill: BackfillInfo | None
    created_at: str


class ConnectorList(BaseModel):
    items: list[ConnectorInfo]


def _info(connector: store.StoredConnector) -> dict[str, Any]:
    return connector.public(datetime.now(timezone.utc))


@router.post("", status_code=201, responses=problem_responses(400),
             summary="Connect an ad account (again: replace its credentials)")
async def add_connector(body: NewConnector, request: Request,
                        principal: Principal = Depends(require_admin)) -> ConnectorInfo:
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        try:
            added = await store.add(conn, request.app.state.box, principal.tenant_id,
                                    body.platform, body.account_id, body.credentials)
        except store.ConnectorConfigError as exc:
            raise HTTPException(400, str(exc)) from None
    return ConnectorInfo.model_validate(_info(added))


@router.get("", summary="The tenant's connectors and their status (never their credentials)")
async def list_connectors(request: Request,
                          principal: Principal = Depends(require_admin)) -> ConnectorList:
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        listed = await store.listed(conn)
    return ConnectorList(items=[ConnectorInfo.model_validate(_info(c)) for c in listed])


@router.delete("/{connector_id}", responses=problem_responses(404),
               summary="Forget a connector and its credentials; pulled spend stays")
async def remove_connector(connector_id: uuid.UUID, request: Request,
                           principal: Principal = Depends(require_admin)) -> dict[str, str]:
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        if not await store.remove(conn, connector_id):
            raise HTTPException(404, "no such connector")
    return {"removed": str(connector_id)}


@router.post("/{connector_id}/backfill", status_code=202, responses=problem_responses(400, 404),
             summary="Pull a past range, a chunk at a time, in the worker; the same range"
                     " asked again resumes")
async def backfill_connector(connector_id: uuid.UUID, body: BackfillRange, request: Request,
                             principal: Principal = Depends(require_admin)) -> ConnectorInfo:
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        try:
            stored = await store.start_backfill(conn, connector_id, body.start, body.end)
        except store.ConnectorConfigError as exc:
            raise HTTPException(400, str(exc)) from None
        except LookupError:
            raise HTTPException(404, "no such connector") from None
    return ConnectorInfo.model_validate(_info(stored))
