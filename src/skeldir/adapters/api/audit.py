"""The audit log: one row per request made with a valid API key (who, when, what, outcome).

An ASGI middleware rather than a dependency: it sees the final status, refusals and errors
included, and streamed exports are recorded when their last byte is sent. It records the route
template and its path parameters (ids), never bodies or query values: no personal data.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skeldir.adapters.api.auth import Principal
from skeldir.base.db import tenant_transaction
from skeldir.base.observability import metrics
from skeldir.domains.ingestion.privacy import storable_text

log = logging.getLogger(__name__)

_PARAM_LIMIT = 200


class AuditLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            principal = scope.get("state", {}).get("principal")
            if isinstance(principal, Principal):
                await _record(scope, principal, status, time.perf_counter() - started)


async def _record(scope: Scope, principal: Principal, status: int, seconds: float) -> None:
    route = scope.get("route")
    params = {
        k: storable_text(str(v)[:_PARAM_LIMIT]) for k, v in (scope.get("path_params") or {}).items()
    }
    try:
        pool = scope["app"].state.pool
        async with tenant_transaction(pool, principal.tenant_id) as conn:
            await conn.execute(
                "INSERT INTO audit_log (tenant_id, key_id, scope, method, route, params, status,"
                " duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                principal.tenant_id,
                principal.key_id,
                principal.scope,
                scope["method"],
                getattr(route, "path", scope["path"])[:_PARAM_LIMIT],
                params,
                status,
                round(seconds * 1000),
            )
    except Exception:
        # The response is already sent; a lost audit row is counted and logged, never raised.
        metrics.AUDIT_WRITE_FAILURES.inc()
        log.exception("audit_write_failed", extra={"tenant_id": str(principal.tenant_id)})
