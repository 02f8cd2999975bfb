"""API keys over HTTP and the CLI (real app, real PostgreSQL): scopes, shown once, stored
hashed, revocation, tenant isolation, and the audit row every keyed request leaves."""

from __future__ import annotations

import json

import asyncpg
import pytest
from click.testing import CliRunner

from db_helpers import create_tenant
from skeldir.adapters.cli import main
from skeldir.base import credentials
from skeldir.base.config import Settings
from skeldir.base.db import create_pool, owner_connection, tenant_transaction

REPORT = "/api/reports/daily-revenue?from=2026-01-01&to=2026-01-31"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def audit_rows(database: Settings, tenant_id) -> list[tuple]:
    with owner_connection(database) as conn:
        return conn.execute(
            "SELECT key_id, scope, method, route, params, status, to_jsonb(a)::text"
            " FROM audit_log a WHERE tenant_id = %s ORDER BY audit_id", (tenant_id,)).fetchall()


def test_an_admin_key_creates_lists_and_revokes_keys(client, database):
    tenant = create_tenant(database)
    created = client.post("/api/keys", json={"scope": "read", "label": "analyst"},
                          headers=bearer(tenant.api_key))
    assert created.status_code == 201, created.text
    read_key = created.json()["api_key"]
    assert read_key.startswith(f"{credentials.API_KEY_PREFIX}_{tenant.tenant_id.hex}_")
    assert client.get(REPORT, headers=bearer(read_key)).status_code == 200

    listed = client.get("/api/keys", headers=bearer(tenant.api_key)).json()["items"]
    assert {k["scope"] for k in listed} == {"admin", "webhook", "collect", "read"}
    assert read_key not in json.dumps(listed) and all("api_key" not in k for k in listed)
    mine = next(k for k in listed if k["key_id"] == created.json()["key_id"])
    assert mine["label"] == "analyst" and mine["last_used_at"] is not None

    with owner_connection(database) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys WHERE tenant_id = %s AND key_id = %s",
                              (tenant.tenant_id, created.json()["key_id"])).fetchone()[0]
    assert bytes(stored) == credentials.digest(read_key) and read_key.encode() not in bytes(stored)

    revoked = client.delete(f"/api/keys/{mine['key_id']}", headers=bearer(tenant.api_key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = client.get(REPORT, headers=bearer(read_key))
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    again = client.delete(f"/api/keys/{mine['key_id']}", headers=bearer(tenant.api_key)).json()
    assert again["revoked_at"] == revoked.json()["revoked_at"]


def test_scopes_are_enforced(client, database):
    tenant = create_tenant(database)
    read_key = client.post("/api/keys", json={"scope": "read"},
                           headers=bearer(tenant.api_key)).json()["api_key"]
    assert client.post("/api/keys", json={"scope": "admin"}, headers=bearer(read_key)).status_code == 403
    assert client.get("/api/keys", headers=bearer(read_key)).status_code == 403
    assert client.get(REPORT, headers=bearer(tenant.collect_key)).status_code == 403
    assert client.get(REPORT, headers=bearer(tenant.webhook_key)).status_code == 403
    assert client.get(REPORT).status_code == 401
    bad = client.post("/api/keys", json={"scope": "root"}, headers=bearer(tenant.api_key))
    assert bad.status_code == 400 and "scope" in bad.json()["detail"]
    long_label = client.post("/api/keys", json={"scope": "read", "label": "x" * 201},
                             headers=bearer(tenant.api_key))
    assert long_label.status_code == 422
    not_uuid = client.delete("/api/keys/not-a-uuid", headers=bearer(tenant.api_key))
    assert not_uuid.status_code == 422


def test_one_tenant_cannot_see_or_revoke_anothers_keys(client, database):
    first, second = create_tenant(database, "first"), create_tenant(database, "second")
    made = client.post("/api/keys", json={"scope": "read"}, headers=bearer(first.api_key)).json()
    theirs = client.get("/api/keys", headers=bearer(second.api_key)).json()["items"]
    assert made["key_id"] not in {k["key_id"] for k in theirs}
    refused = client.delete(f"/api/keys/{made['key_id']}", headers=bearer(second.api_key))
    assert refused.status_code == 404
    assert client.get(REPORT, headers=bearer(made["api_key"])).status_code == 200
    # A key names its tenant; another tenant's id with the same secret part resolves to nothing.
    forged = made["api_key"].replace(first.tenant_id.hex, second.tenant_id.hex)
    assert client.get(REPORT, headers=bearer(forged)).status_code == 401


def test_every_keyed_request_is_audited_without_query_values(client, database):
    tenant = create_tenant(database)
    client.get(REPORT + "&probe=alex%40example.com", headers=bearer(tenant.api_key))
    client.get(REPORT, headers=bearer(tenant.collect_key))
    client.get("/api/keys", headers=bearer(tenant.api_key))
    client.get(REPORT, headers=bearer("skd_" + tenant.tenant_id.hex + "_wrong"))
    client.get(REPORT)
    rows = audit_rows(database, tenant.tenant_id)
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [
        ("admin", "GET", "/api/reports/daily-revenue", 200),
        ("collect", "GET", "/api/reports/daily-revenue", 403),
        ("admin", "GET", "/api/keys", 200),
    ]
    assert all("example.com" not in r[6] and "2026-01-01" not in r[6] for r in rows)

    made = client.post("/api/keys", json={"scope": "read"}, headers=bearer(tenant.api_key)).json()
    client.delete(f"/api/keys/{made['key_id']}", headers=bearer(tenant.api_key))
    last = audit_rows(database, tenant.tenant_id)[-1]
    assert (last[3], last[4], last[5]) == ("/api/keys/{key_id}", {"key_id": made["key_id"]}, 200)
    assert made["api_key"] not in "".join(r[6] for r in audit_rows(database, tenant.tenant_id))


@pytest.mark.anyio
async def test_the_runtime_role_never_reads_key_hashes(database):
    tenant = create_tenant(database)
    runtime_pool = await create_pool(database, max_size=2)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        assert len(await conn.fetch("SELECT key_id, scope FROM api_keys")) == 3
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
            await conn.fetch("SELECT key_hash FROM api_keys")
    other = create_tenant(database, "other")
    async with tenant_transaction(runtime_pool, other.tenant_id) as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE tenant_id = $1", tenant.tenant_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1",
                                   tenant.tenant_id) == 0
    await runtime_pool.close()


def run(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key,
           "SKELDIR_WORKER_DATABASE_URL": database.worker_database_url}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env)


def test_the_cli_manages_keys_with_the_same_rules(client, database):
    tenant = create_tenant(database)
    created = run(database, "key", "create", "--tenant", str(tenant.tenant_id), "--scope", "read",
                  "--label", "from the cli", "--json")
    assert created.exit_code == 0, created.output
    made = json.loads(created.output)
    assert client.get(REPORT, headers=bearer(made["api_key"])).status_code == 200
    listed = json.loads(run(database, "key", "list", "--tenant", str(tenant.tenant_id),
                            "--json").output)["items"]
    assert made["key_id"] in {k["key_id"] for k in listed} and made["api_key"] not in json.dumps(listed)
    revoked = run(database, "key", "revoke", "--tenant", str(tenant.tenant_id), made["key_id"], "--json")
    assert revoked.exit_code == 0 and json.loads(revoked.output)["revoked_at"]
    assert client.get(REPORT, headers=bearer(made["api_key"])).status_code == 401
    missing = run(database, "key", "revoke", "--tenant", str(tenant.tenant_id),
                  "00000000-0000-0000-0000-000000000000")
    assert missing.exit_code != 0 and "no key" in missing.output
    unknown = run(database, "key", "create", "--tenant", "00000000-0000-0000-0000-000000000000",
                  "--scope", "read")
    assert unknown.exit_code != 0 and "no tenant" in unknown.output
