"""Spend connectors over the admin API: connect (credentials never answered back), list,
backfill, remove; bad requests answered as problem+json; the status page shows each
connector's state, needs_reauth included."""

from __future__ import annotations

import json

import pytest

from db_helpers import create_tenant
from skeldir.base.db import owner_connection

SECRET = "EAAB-api-secret-token"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_meta(client, key: str, account: str = "act_123"):
    return client.post("/api/connectors", headers=bearer(key), json={
        "platform": "meta", "account_id": account, "credentials": {"access_token": SECRET}})


def test_an_admin_connects_lists_backfills_and_removes_an_account(client, database):
    tenant = create_tenant(database)
    added = add_meta(client, tenant.api_key, "123")
    assert added.status_code == 201, added.text
    assert SECRET not in added.text and "credentials" not in added.json()
    connector = added.json()
    assert (connector["platform"], connector["account_id"], connector["status"]) == (
        "meta", "act_123", "pending")
    listed = client.get("/api/connectors", headers=bearer(tenant.api_key))
    assert [c["connector_id"] for c in listed.json()["items"]] == [connector["connector_id"]]
    assert SECRET not in listed.text
    url = f"/api/connectors/{connector['connector_id']}"
    backfill = client.post(f"{url}/backfill", headers=bearer(tenant.api_key),
                           json={"from": "2026-09-01", "to": "2026-11-30"})
    assert backfill.status_code == 202, backfill.text
    assert backfill.json()["backfill"] == {"from": "2026-09-01", "to": "2026-11-30",
                                           "next": "2026-09-01", "done": False}
    assert client.delete(url, headers=bearer(tenant.api_key)).json() == {
        "removed": connector["connector_id"]}
    assert client.delete(url, headers=bearer(tenant.api_key)).status_code == 404
    assert client.get("/api/connectors", headers=bearer(tenant.api_key)).json() == {"items": []}


def test_credentials_are_encrypted_at_rest(client, database):
    tenant = create_tenant(database)
    add_meta(client, tenant.api_key)
    with owner_connection(database) as conn:
        [ciphertext] = conn.execute(
            "SELECT credentials_ciphertext FROM connectors WHERE tenant_id = %s",
            (tenant.tenant_id,)).fetchone()
    assert SECRET.encode() not in bytes(ciphertext)


@pytest.mark.parametrize(("body", "detail"), [
    ({"platform": "myspace", "account_id": "1", "credentials": {}}, "platform: one of"),
    ({"platform": "meta", "account_id": "act_1", "credentials": {}}, "missing: access_token"),
    ({"platform": "google_ads", "account_id": "12-ab", "credentials": {}}, "customer id"),
    ({"platform": "meta", "account_id": "act_1", "credentials": {"access_token": "a\u0000"}},
     "printable text"),
    ({"platform": "meta", "account_id": "act_1", "credentials": {"access_token": "\ud800"}},
     "printable text"),
])
def test_a_bad_connector_is_refused_with_the_reason(client, database, body, detail):
    tenant = create_tenant(database)
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client may send it.
    answer = client.post("/api/connectors", content=json.dumps(body),
                         headers={**bearer(tenant.api_key), "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert detail in answer.json()["detail"]


def test_a_backfill_range_must_make_sense(client, database):
    tenant = create_tenant(database)
    url = f"/api/connectors/{add_meta(client, tenant.api_key).json()['connector_id']}/backfill"
    reversed_range = client.post(url, headers=bearer(tenant.api_key),
                                 json={"from": "2026-11-30", "to": "2026-09-01"})
    assert reversed_range.status_code == 400 and "after its last" in reversed_range.text
    not_dates = client.post(url, headers=bearer(tenant.api_key),
                            json={"from": "yesterday", "to": "2026-09-01"})
    assert not_dates.status_code == 422
    unknown = client.post("/api/connectors/00000000-0000-0000-0000-000000000000/backfill",
                          headers=bearer(tenant.api_key),
                          json={"from": "2026-09-01", "to": "2026-09-02"})
    assert unknown.status_code == 404


def test_a_read_key_cannot_manage_connectors_and_tenants_see_only_their_own(client, database):
    a, b = create_tenant(database, "A"), create_tenant(database, "B")
    created = add_meta(client, a.api_key).json()
    read_key = client.post("/api/keys", headers=bearer(a.api_key), json={"scope": "read"})
    assert client.get("/api/connectors",
                      headers=bearer(read_key.json()["api_key"])).status_code == 403
    assert client.get("/api/connectors", headers=bearer(b.api_key)).json() == {"items": []}
    assert client.delete(f"/api/connectors/{created['connector_id']}",
                         headers=bearer(b.api_key)).status_code == 404


def test_the_status_page_shows_a_connector_that_needs_reauth(client, database):
    tenant = create_tenant(database)
    created = add_meta(client, tenant.api_key).json()
    with owner_connection(database) as conn:
        # What a pull records when the platform says the grant expired.
        conn.execute("UPDATE connectors SET status = 'needs_reauth', last_pull_at = now(),"
                     " last_error = 'Meta error 190/463: Session has expired'"
                     " WHERE connector_id = %s", (created["connector_id"],))
    status = client.get("/api/status", headers=bearer(tenant.api_key)).json()
    assert status["connectors"] == [{
        "connector_id": created["connector_id"], "platform": "meta", "account_id": "act_123",
        "status": "needs_reauth", "last_error": "Meta error 190/463: Session has expired",
        "last_pull_at": status["connectors"][0]["last_pull_at"], "last_success_at": None,
        "lag_seconds": None}]
    assert status["connectors"][0]["last_pull_at"] is not None
