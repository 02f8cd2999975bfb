"""`skeldir tenant delete`: every row of the tenant, in every table the catalog lists, and
nothing of any other tenant."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from db_helpers import populate_every_tenant_table
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.db import create_worker_pool, owner_connection
from skeldir.operations import tenant_deletion


def run(database: Settings, *args: str, stdin: str | None = None):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env,
                              input=stdin)


def populate(database: Settings, *tenants) -> None:
    async def go() -> None:
        pool = await create_worker_pool(database, max_size=2)
        try:
            for tenant in tenants:
                await populate_every_tenant_table(database, pool, tenant)
        finally:
            await pool.close()

    asyncio.run(go())


def counts(database: Settings, tenant_id) -> dict[str, int]:
    with owner_connection(database, autocommit=True) as conn:
        return tenant_deletion.remaining_rows(conn, tenant_id)


def test_the_catalog_lists_referencing_tables_before_the_ones_they_reference(database: Settings):
    with owner_connection(database) as conn:
        tables = tenant_deletion.tenant_tables(conn)
    assert tables[-1] == "tenants"
    assert tables.index("revenue_entries") < tables.index("orders")
    assert tables.index("webhook_source_secrets") < tables.index("webhook_sources")
    assert "privacy_requests" in tables and "fx_rates" not in tables


def test_delete_removes_every_row_of_the_tenant_and_nothing_else(database: Settings,
                                                                tenant_factory):
    doomed, other = tenant_factory("doomed"), tenant_factory("kept")
    populate(database, doomed, other)
    before = counts(database, doomed.tenant_id)
    # The seeding covers every tenant table the catalog lists: a table added later fails here
    # until populate_every_tenant_table writes it, and the deletion then covers it unedited.
    assert all(before.values()), {t: n for t, n in before.items() if not n}
    others_before = counts(database, other.tenant_id)

    refused = run(database, "tenant", "delete", str(doomed.tenant_id), stdin="n\n")
    assert refused.exit_code != 0 and counts(database, doomed.tenant_id) == before

    # Small batches, so every table takes several.
    done = run(database, "tenant", "delete", str(doomed.tenant_id), "--yes", "--batch-size", "1",
               "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["deleted_rows"] == sum(before.values()) and not report["resumed"]
    assert not any(counts(database, doomed.tenant_id).values())
    assert counts(database, other.tenant_id) == others_before

    again = run(database, "tenant", "delete", str(doomed.tenant_id), "--yes")
    assert again.exit_code != 0 and "no tenant" in again.output


def test_a_deletion_interrupted_by_a_crash_resumes(database: Settings, tenant_factory):
    tenant = tenant_factory("crashing")
    populate(database, tenant)

    class Crash(Exception):
        pass

    batches = []

    def crash_on_third_batch(rows: int) -> None:
        batches.append(rows)
        if len(batches) == 3:
            raise Crash

    with owner_connection(database, autocommit=True) as conn:
        try:
            tenant_deletion.delete_tenant(conn, tenant.tenant_id, batch_size=1,
                                          on_batch=crash_on_third_batch)
        except Crash:
            pass
        marked = conn.execute("SELECT deleting_at IS NOT NULL FROM tenants WHERE tenant_id = %s",
                              (tenant.tenant_id,)).fetchone()
        assert marked == (True,)
    left = counts(database, tenant.tenant_id)
    assert 0 < sum(left.values())

    # Marked: its keys are revoked and its sources disabled, so nothing new arrives for it.
    with owner_connection(database) as conn:
        for table, column in (("api_keys", "revoked_at"), ("webhook_sources", "disabled_at")):
            open_ones = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s"
                                     f" AND {column} IS NULL", (tenant.tenant_id,)).fetchone()
            assert open_ones == (0,), table

    resumed = run(database, "tenant", "delete", str(tenant.tenant_id), "--yes", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["resumed"] is True
    assert not any(counts(database, tenant.tenant_id).values())
