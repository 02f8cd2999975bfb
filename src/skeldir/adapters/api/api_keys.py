"""API key endpoints (admin scope): create (the key is in that one response), list, revoke."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from skeldir.adapters.api.auth import Principal, require_admin
from skeldir.adapters.api.problem_responses import ADMIN_ERRORS
from skeldir.operations import api_keys

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=ADMIN_ERRORS)


class NewKey(BaseModel):
    scope: str = Field(description="read, admin, collect or webhook", examples=["read"])
    label: str | None = Field(default=None, max_length=api_keys.MAX_LABEL_LENGTH)


class KeyInfo(BaseModel):
    key_id: str
    scope: str
    label: str | None
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


class CreatedKeyInfo(KeyInfo):
    api_key: str = Field(description="The key itself: shown in this response only")


class KeyList(BaseModel):
    items: list[KeyInfo]


@router.post("", status_code=201, summary="Create a key; it is shown in this response only")
async def create_key(
    body: NewKey, request: Request, principal: Principal = Depends(require_admin)
) -> CreatedKeyInfo:
    if body.label is not None and "\x00" in body.label:
        raise HTTPException(400, "a label has no NUL character")
    try:
        created = await api_keys.create_key(
            request.app.state.pool, principal.tenant_id, body.scope, body.label
        )
    except api_keys.KeyRequestError as exc:
        raise HTTPException(400, str(exc)) from exc
    return CreatedKeyInfo(
        key_id=str(created.key_id),
        scope=created.scope,
        label=created.label,
        created_at=created.created_at.isoformat(),
        revoked_at=None,
        last_used_at=None,
        api_key=created.api_key,
    )


@router.get("", summary="The tenant's keys, revoked ones included (never the keys themselves)")
async def list_keys(request: Request, principal: Principal = Depends(require_admin)) -> KeyList:
    items = await api_keys.list_keys(request.app.state.pool, principal.tenant_id)
    return KeyList(items=[KeyInfo(**item) for item in items])


@router.delete("/{key_id}", summary="Revoke a key at once")
async def revoke_key(
    key_id: uuid.UUID, request: Request, principal: Principal = Depends(require_admin)
) -> KeyInfo:
    try:
        revoked = await api_keys.revoke_key(request.app.state.pool, principal.tenant_id, key_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    return KeyInfo(**revoked)
