"""API key authentication: `Authorization: Bearer <key>` resolves to one tenant and scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import HTTPException, Request

from skeldir.base import credentials
from skeldir.base.http import rate_limits

_READ_SCOPES = frozenset({"read", "admin"})
_ADMIN_SCOPES = frozenset({"admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    scope: str


def _unauthorized() -> HTTPException:
    return HTTPException(401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"})


async def bearer_principal(request: Request) -> Principal | None:
    """The tenant and scope of the request's `Authorization: Bearer` API key, if it is valid."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential:
        return None
    parsed = credentials.parse_credential(credential.strip(), credentials.API_KEY_PREFIX)
    if parsed is None:
        return None
    row = await request.app.state.pool.fetchrow(
        "SELECT key_id, scope FROM resolve_api_key($1, $2)", parsed.tenant_id, parsed.digest
    )
    return Principal(parsed.tenant_id, row["key_id"], row["scope"]) if row else None


async def _require(request: Request, scopes: frozenset[str], denied: str) -> Principal:
    principal = await bearer_principal(request)
    if principal is None:
        raise _unauthorized()
    # The audit log records every request a valid key made, refused ones included.
    request.state.principal = principal
    # Scope first: a key that may not call this (the public collect key, say) is refused
    # without spending the tenant's API budget, or anyone holding it could exhaust that budget.
    if principal.scope not in scopes:
        raise HTTPException(403, denied)
    await rate_limits.enforce(request, rate_limits.API, principal.tenant_id)
    return principal


async def require_reader(request: Request) -> Principal:
    """A `read` or `admin` key: reports, exports, listings."""
    return await _require(request, _READ_SCOPES, "this key cannot read reports")


async def require_admin(request: Request) -> Principal:
    """An `admin` key: keys and operations (replay, re-parse, recompute)."""
    return await _require(request, _ADMIN_SCOPES, "this action needs an admin key")
