"""The dashboard: its page and assets, and `GET /api/status`, the ingest and freshness
indicators it shows for the key's tenant."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.responses import Response

from skeldir.adapters.api.auth import Principal, require_reader
from skeldir.adapters.api.problem_responses import problem_responses
from skeldir.adapters.api.tenant_connection import TenantConnection
from skeldir.domains.connectors import store as connector_store

router = APIRouter(tags=["dashboard"])

# Everything the page loads comes from this origin, and no script runs inline: a key pasted
# into the page can only be sent where the page's own code sends it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate on every load, so an upgraded server never runs against a cached script.
    "Cache-Control": "no-cache",
}
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


def _packaged(name: str, media_type: str) -> Response:
    body = files("skeldir.adapters.dashboard").joinpath(name).read_bytes()
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def dashboard_page() -> Response:
    return _packaged("index.html", "text/html; charset=utf-8")


@router.get("/dashboard/{asset}", include_in_schema=False)
async def dashboard_asset(asset: str) -> Response:
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise HTTPException(404, "no such dashboard asset")
    return _packaged(asset, media_type)


# Explicit tenant_id predicates (row-level security admits the same rows) let the planner use
# the (tenant_id, ...) indexes; the page asks every few seconds.
_STATUS_SQL = """
SELECT now() AS now,
       (SELECT count(*) FROM webhook_events
         WHERE tenant_id = $1 AND received_at > now() - interval '1 hour') AS events_last_hour,
       (SELECT count(*) FROM webhook_events
         WHERE tenant_id = $1 AND received_at > now() - interval '24 hours') AS events_last_24h,
       (SELECT max(received_at) FROM webhook_events WHERE tenant_id = $1) AS last_event_at,
       (SELECT count(*) FROM dead_events
         WHERE tenant_id = $1 AND replayed_at IS NULL) AS dead_events_unreplayed,
       (SELECT count(*) FROM pending_orders WHERE tenant_id = $1) AS pending_orders,
       (SELECT min(marked_at) FROM pending_orders WHERE tenant_id = $1) AS oldest_pending_at,
       (SELECT count(*) FROM report_dirty_orders WHERE tenant_id = $1) AS report_dirty_orders,
       -- When the last recompute finished: one row, where max(computed_at) would read every
       -- attribution row of the tenant.
       (SELECT last_finished_at FROM chain_state WHERE tenant_id = $1) AS last_attributed_at
"""


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


@router.get(
    "/api/status",
    summary="Ingest and freshness indicators for the key's tenant",
    responses=problem_responses(401, 403),
)
async def status(
    request: Request, principal: Principal = Depends(require_reader), *, conn: TenantConnection
) -> dict:
    row = await conn.fetchrow(_STATUS_SQL, principal.tenant_id)
    connectors = await connector_store.listed(conn)
    oldest = row["oldest_pending_at"]
    return {
        "tenant_id": str(principal.tenant_id),
        # The page offers admin actions (replay) only to a key that may take them.
        "scope": principal.scope,
        "now": row["now"].isoformat(),
        "ingest": {
            "events_last_hour": row["events_last_hour"],
            "events_last_24h": row["events_last_24h"],
            "last_event_at": _iso(row["last_event_at"]),
            "dead_events_unreplayed": row["dead_events_unreplayed"],
        },
        "freshness": {
            "pending_orders": row["pending_orders"],
            "oldest_pending_at": _iso(oldest),
            "oldest_pending_age_seconds": (
                # A mark committed after this transaction began can postdate its now().
                max(0.0, round((row["now"] - oldest).total_seconds(), 3)) if oldest else None
            ),
            "report_dirty_orders": row["report_dirty_orders"],
            "last_attributed_at": _iso(row["last_attributed_at"]),
            "reports_fresh": row["pending_orders"] == 0 and row["report_dirty_orders"] == 0,
        },
        # Whether reads go to the read replica, and how far behind it is.
        "read_replica": request.app.state.reads.status(),
        # Spend connectors: needs_reauth asks the account's owner for a new grant.
        "connectors": [
            {key: value for key, value in c.public(row["now"]).items()
             if key in ("connector_id", "platform", "account_id", "status", "last_error",
                        "last_pull_at", "last_success_at", "lag_seconds")}
            for c in connectors
        ],
    }
