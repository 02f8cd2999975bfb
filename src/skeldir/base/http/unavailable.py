"""503 with Retry-After, never a 500, while PostgreSQL cannot be reached.

A restart or failover of the database is an outage to wait out, not a fault of the request:
webhook providers retry a 503, and a dashboard can say "try again shortly".
"""

from __future__ import annotations

import logging

from fastapi import Request
from starlette.responses import Response

from skeldir.base.http.problems import problem

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def database_unavailable() -> Response:
    return problem(
        503,
        "Service unavailable",
        "the database is unreachable; retry later",
        retry_after=RETRY_AFTER_SECONDS,
    )


async def database_unavailable_handler(request: Request, exc: Exception) -> Response:
    log.warning(
        "database_unavailable",
        # The route's template, never the path: a webhook path carries the source's token.
        extra={"route": getattr(request.scope.get("route"), "path", None),
               "error": type(exc).__name__},
    )
    return database_unavailable()
