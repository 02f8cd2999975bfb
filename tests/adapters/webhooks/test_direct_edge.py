"""The webhook URLs the direct edge answers are exactly the declared webhook routes, and an
unexpected error in an endpoint is still a logged 500 problem+json."""

from __future__ import annotations

import json

import pytest

from skeldir.adapters.webhooks import router

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/hooks/src_abc", (router.receive_by_source_token, {"source_token": "src_abc"})),
        ("/hooks/src_abc/", (router.receive_by_source_token, {"source_token": "src_abc"})),
        ("/api/webhooks/shopify", (router.receive_by_tenant_key, {"provider": "shopify"})),
        ("/api/webhooks/shopify/order_create",
         (router.receive_legacy, {"provider": "shopify", "legacy_route": "order_create"})),
        ("/hooks/", None),
        ("/hooks", None),
        ("/hooks/src_abc/extra", None),
        ("/hooks//", None),
        ("/api/webhooks/", None),
        ("/api/webhooks/shopify/", None),
        ("/api/webhooks/shopify/order_create/x", None),
        ("/api/reports/daily", None),
        ("/", None),
    ],
)
def test_only_the_declared_webhook_paths_are_served_directly(path, expected):
    assert router.direct_endpoint(path) == expected


async def test_an_unexpected_error_is_logged_and_answered_500(caplog):
    async def broken(request, **params):
        raise RuntimeError("boom")

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/hooks/x", "headers": [],
             "query_string": b""}
    await router.serve_directly(broken, {"source_token": "x"}, scope, receive, send)

    start, body = sent[0], sent[1]
    assert start["status"] == 500
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert json.loads(body["body"])["status"] == 500
    assert any(r.getMessage() == "webhook_failed" and r.exc_info for r in caplog.records)
