"""The smaller edges of the HTTP surface: where /metrics is served, how CSV cells are quoted,
the headers of /docs, and a webhook URL with a trailing slash."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import re
import socket
from dataclasses import replace
from datetime import date
from urllib.parse import urlsplit

import httpx
from starlette.testclient import TestClient

from db_helpers import SHOPIFY_SECRET, create_tenant, order_body
from skeldir.adapters.app import create_app
from skeldir.base.config import Settings
from skeldir.domains.reporting import exports


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_metrics_move_to_their_own_listener_when_one_is_set(database: Settings):
    port = free_port()
    settings = replace(database, broker_url="memory://", api_metrics_port=port)
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 404
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert scraped.status_code == 200
        assert "webhook_requests_total" in scraped.text
    # By default they stay on the API's own port.
    with TestClient(create_app(replace(database, broker_url="memory://"))) as client:
        assert client.get("/metrics").status_code == 200


async def _csv(rows: list[tuple]) -> str:
    async def chunks():
        yield rows

    return b"".join([piece async for piece in exports.csv_bytes(exports.ALLOCATIONS, chunks())]
                    ).decode()


def test_every_text_cell_is_quoted_so_no_separator_splits_it():
    row = (date(2026, 3, 1), "EUR", "shopify", "1001;=HYPERLINK(1)", "linear", "=cmd|'/c calc'!A0",
           1250, -3)
    text = asyncio.run(_csv([row]))
    header, line = text.splitlines()
    assert header == "day,currency,provider,external_order_id,model,channel,net_cents,gross_cents"
    assert line == ('"2026-03-01","EUR","shopify","1001;=HYPERLINK(1)","linear",'
                    '"\'=cmd|\'/c calc\'!A0",1250,-3')
    # A spreadsheet that separates on `;` (much of Europe) splits only outside quotes.
    assert ";" not in re.sub(r'"(?:[^"]|"")*"', "", line)
    parsed = next(csv.reader(io.StringIO(line)))
    assert parsed[3] == "1001;=HYPERLINK(1)" and parsed[5].startswith("'=")


def test_the_docs_page_may_not_be_framed_or_sniffed(database: Settings):
    with TestClient(create_app(replace(database, broker_url="memory://"))) as client:
        for path in ("/docs", "/docs.js"):
            response = client.get(path)
            assert response.status_code == 200
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"


def test_a_webhook_url_with_a_trailing_slash_is_the_same_url_never_a_redirect(database):
    tenant = create_tenant(database, "slash")
    path = urlsplit(tenant.source_url).path
    body = order_body(5_500_001)
    signature = base64.b64encode(
        hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
               "X-Shopify-Hmac-Sha256": signature}
    with TestClient(create_app(replace(database, broker_url="memory://")),
                    follow_redirects=False) as client:
        accepted = client.post(path + "/", content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["status"] == "accepted"
        assert "location" not in accepted.headers
        forged = client.post(path + "/", content=body, headers={**headers,
                             "X-Shopify-Hmac-Sha256": "AAAA"})
        assert forged.status_code == 401 and "location" not in forged.headers
        # Nowhere else does a slash turn into a redirect that echoes the path.
        for method, other in (("POST", "/api/webhooks/shopify/"), ("GET", "/api/status/")):
            response = client.request(method, other)
            assert response.status_code not in (301, 302, 307, 308), (other, response.headers)
