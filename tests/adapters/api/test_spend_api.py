"""The spend ledger over HTTP: load rows (admin key), all or nothing with errors per row index;
read them back in the reporting currency (read key), paged."""

from __future__ import annotations

from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from db_helpers import create_tenant
from skeldir.adapters.app import create_app
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection


@pytest.fixture(scope="module")
def client(database: Settings):
    with TestClient(create_app(replace(database, broker_url="memory://"))) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def row(**overrides) -> dict:
    base = {"date": "2026-12-01", "platform": "meta", "account_id": "act_1",
            "campaign_id": "c1", "campaign_name": "Spring", "adset_id": "s1",
            "adset_name": "Lookalike", "ad_id": "a1", "ad_name": "Video", "currency": "USD",
            "spend": "50.00", "impressions": 1000, "clicks": 40}
    return {**base, **overrides}


def stored(database: Settings, tenant) -> list[tuple]:
    with owner_connection(database) as conn:
        return conn.execute(
            "SELECT campaign_id, ad_id, spend_minor, clicks FROM ad_spend WHERE tenant_id = %s"
            " ORDER BY campaign_id, ad_id", (tenant.tenant_id,)).fetchall()


def test_an_admin_loads_spend_and_a_restatement_replaces_it(client, database):
    tenant = create_tenant(database)
    admin = bearer(tenant.api_key)
    answer = client.post("/api/spend", headers=admin, json={"rows": [
        row(), row(ad_id="a2", spend="1.50"), row(campaign_id="c2", adset_id=None,
                                                  ad_id=None, spend="3")]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 3, "errors": []}
    restated = client.post("/api/spend", headers=admin,
                           json={"rows": [row(spend="55.10", clicks=41)]})
    assert restated.json() == {"accepted": 1, "errors": []}
    assert stored(database, tenant) == [("c1", "a1", 5510, 41), ("c1", "a2", 150, 40),
                                        ("c2", "", 300, 40)]


def test_one_bad_row_stores_nothing_and_each_error_names_its_index(client, database):
    tenant = create_tenant(database)
    answer = client.post("/api/spend", headers=bearer(tenant.api_key), json={"rows": [
        row(), row(spend=50.0), row(), row(platform="myspace", currency="usd")]})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    errors = answer.json()["errors"]
    assert [e["index"] for e in errors] == [1, 3]
    assert "spend" in errors[0]["errors"][0]
    assert len(errors[1]["errors"]) == 2
    assert stored(database, tenant) == []


def test_the_body_shape_size_and_key_scope_are_checked(client, database):
    tenant = create_tenant(database)
    admin = bearer(tenant.api_key)
    reader = bearer(client.post("/api/keys", json={"scope": "read"}, headers=admin)
                    .json()["api_key"])
    assert client.post("/api/spend", json={"rows": [row()]}).status_code == 401
    assert client.post("/api/spend", headers=reader, json={"rows": [row()]}).status_code == 403
    assert client.post("/api/spend", headers=admin, json={"rows": []}).status_code == 400
    assert client.post("/api/spend", headers=admin, json=[row()]).status_code == 400
    assert client.post("/api/spend", headers=admin, content=b"{").status_code == 400
    too_many = {"rows": [row(campaign_id=f"c{i}") for i in range(10_001)]}
    assert client.post("/api/spend", headers=admin, json=too_many).status_code == 400
    assert stored(database, tenant) == []


def test_a_reader_pages_spend_in_the_reporting_currency(client, database):
    tenant = create_tenant(database)
    admin = bearer(tenant.api_key)
    reader = bearer(client.post("/api/keys", json={"scope": "read"}, headers=admin)
                    .json()["api_key"])
    client.post("/api/spend", headers=admin, json={"rows": [
        row(date="2026-11-03", campaign_id="eur", currency="EUR", spend="10.00"),
        row(date="2026-11-04", campaign_id="eur", currency="EUR", spend="10.00"),
        row(date="2026-11-04", spend="2.00")]})
    with owner_connection(database) as conn:
        conn.execute("INSERT INTO fx_rates (day, base, quote, rate) VALUES"
                     " ('2026-11-03', 'EUR', 'USD', 1.25) ON CONFLICT DO NOTHING")
    url = "/api/reports/spend?from=2026-11-01&to=2026-11-30&limit=2"
    first = client.get(url, headers=reader)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["from"] == "2026-11-01" and body["next_cursor"]
    second = client.get(f"{url}&cursor={body['next_cursor']}", headers=reader).json()
    assert second["next_cursor"] is None
    items = body["items"] + second["items"]
    assert [(i["day"], i["campaign_id"], i["spend_cents"], i["spend_reporting_cents"],
             i["rate_missing"]) for i in items] == [
        ("2026-11-03", "eur", 1000, 1250, False),
        ("2026-11-04", "c1", 200, 200, False),
        ("2026-11-04", "eur", 1000, None, True),
    ]
    assert client.get(url, headers=bearer("nope")).status_code == 401
    assert client.get(f"{url}&cursor=zz", headers=reader).status_code == 400
