"""The problem+json errors an endpoint can return, described for its OpenAPI operation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from skeldir.base.http.problems import PROBLEM_MEDIA_TYPE


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is rendered."""

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Bad request"])
    status: int = Field(examples=[400])
    detail: str | None = Field(default=None, examples=["the cursor is not one this API returned"])
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Only on 422: which parameter failed and why"
    )


_WHEN = {
    400: "A value is out of range or unknown (a model, a date range), or a cursor does not decode",
    401: "No valid API key (`Authorization: Bearer <key>`)",
    403: "The key's scope does not allow this request",
    404: "No such resource for this tenant",
    409: "The request names more than one resource (an order id of several stores: add `store`),"
         " or the tenant's data does not allow it yet (no converting journey to learn from)",
    410: "The resource was held once and is no longer (erased, or past its retention)",
    413: "The body is over the size limit",
    422: "A parameter or body field does not match its type or pattern",
    429: "The tenant is over its rate limit; retry after `Retry-After` seconds",
}

# Inline rather than a `model` entry: FastAPI files a `model` under application/json only.
_SCHEMA = Problem.model_json_schema()


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its cause and the problem+json schema.

    A route that takes a key (401) is rate limited per tenant, so it may answer 429 too.
    """
    if 401 in statuses:
        statuses = (*statuses, 429)
    return {
        status: {"description": _WHEN[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": _SCHEMA}}}
        for status in statuses
    }


READER_ERRORS = problem_responses(400, 401, 403, 422)
# Keys and operations: the same, plus an id that names nothing of this tenant.
ADMIN_ERRORS = problem_responses(400, 401, 403, 404, 422)
