"""Privacy requests over HTTP (admin key): ask for an erasure or a data request, list the
requests, read a data request's export. Identifiers are hashed on arrival; the work runs in the
worker."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import AfterValidator, BaseModel, Field

from skeldir.adapters.api.auth import Principal, require_admin
from skeldir.adapters.api.problem_responses import ADMIN_ERRORS, problem_responses
from skeldir.adapters.tasks.privacy import schedule_request
from skeldir.base.db import tenant_transaction
from skeldir.domains.privacy import requests
from skeldir.domains.privacy.data_export import held_data
from skeldir.domains.privacy.subjects import OrderRef, SubjectError
from skeldir.operations import privacy_requests

router = APIRouter(prefix="/api/privacy", tags=["privacy"], responses=ADMIN_ERRORS)


def _storable(value: str) -> str:
    """Text PostgreSQL can take: no NUL, no lone surrogate (neither is in any stored id)."""
    if "\x00" in value:
        raise ValueError("cannot hold a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode text") from None
    return value


Identifier = Annotated[str, AfterValidator(_storable)]


class OrderIdentifier(BaseModel):
    provider: Identifier = Field(max_length=32, examples=["shopify"])
    order_id: Identifier = Field(max_length=256, examples=["820982911946154508"])


class SubjectIdentifiers(BaseModel):
    customer_reference: Identifier | None = Field(
        default=None, max_length=256, description="As the platform sends it (often an email)"
    )
    email: Identifier | None = Field(default=None, max_length=256)
    visitor_id: Identifier | None = Field(default=None, max_length=256)
    orders: list[OrderIdentifier] = Field(default_factory=list, max_length=1000)


class RequestReceived(BaseModel):
    request_id: str
    status: str = Field(description="received: the worker carries it out")


class RequestInfo(BaseModel):
    request_id: str
    kind: str
    origin: str
    source_id: str | None
    received_at: str
    completed_at: str | None
    counts: dict


class RequestList(BaseModel):
    items: list[RequestInfo]


@router.post("/erasures", status_code=202, summary="Erase what is derived from one customer")
async def request_erasure(
    body: SubjectIdentifiers, request: Request, principal: Principal = Depends(require_admin)
) -> RequestReceived:
    return await _submit(request, principal, "erasure", body)


@router.post(
    "/data-requests",
    status_code=202,
    summary="Record a data request; its export lists what is held about the customer",
)
async def request_data(
    body: SubjectIdentifiers, request: Request, principal: Principal = Depends(require_admin)
) -> RequestReceived:
    return await _submit(request, principal, "data_request", body)


async def _submit(
    request: Request, principal: Principal, kind: str, body: SubjectIdentifiers
) -> RequestReceived:
    try:
        request_id, _ = await privacy_requests.submit(
            request.app.state.pool,
            request.app.state.box,
            principal.tenant_id,
            kind=kind,
            origin="api",
            customer_refs=[v for v in (body.customer_reference, body.email) if v is not None],
            visitor_ids=[body.visitor_id] if body.visitor_id is not None else [],
            orders=[OrderRef(o.provider, o.order_id) for o in body.orders],
        )
    except SubjectError as exc:
        raise HTTPException(400, str(exc)) from exc
    await schedule_request(request.app.state.celery, principal.tenant_id, request_id)
    return RequestReceived(request_id=str(request_id), status="received")


@router.get("/requests", summary="The tenant's privacy requests, newest first (no personal data)")
async def list_requests(
    request: Request, kind: str | None = None, principal: Principal = Depends(require_admin)
) -> RequestList:
    if kind is not None and kind not in requests.KINDS:
        raise HTTPException(400, f"kind is one of {', '.join(requests.KINDS)}")
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        found = await requests.listing(conn, principal.tenant_id, kind=kind, limit=1000)
    return RequestList(items=[RequestInfo(**r.summary()) for r in found])


@router.get(
    "/requests/{request_id}/export",
    summary="What is held about a data request's subject",
    responses=problem_responses(410),
)
async def export_request(
    request_id: uuid.UUID, request: Request, principal: Principal = Depends(require_admin)
) -> dict:
    async with tenant_transaction(request.app.state.pool, principal.tenant_id) as conn:
        found = await requests.get(conn, principal.tenant_id, request_id)
        if found is None or found.kind != "data_request":
            raise HTTPException(404, "no such data request")
        if found.subject.empty:
            # Its subject was erased, or aged out with the payload copies.
            raise HTTPException(410, "this data request's export is no longer held")
        held = await held_data(conn, principal.tenant_id, found.subject)
    return {"request": found.summary(), **held}
