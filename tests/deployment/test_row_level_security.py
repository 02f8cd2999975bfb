"""Row-level security, proven on every tenant table the catalog lists, as the runtime role."""

from __future__ import annotations

import asyncpg
import pytest
from db_helpers import SHOPIFY_SECRET, populate_every_tenant_table

from skeldir.base import credentials
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection, tenant_transaction

pytestmark = pytest.mark.anyio

TENANT_TABLES_SQL = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
  AND a.attname = 'tenant_id' AND NOT a.attisdropped
ORDER BY c.relname
"""


def tenant_tables(settings: Settings) -> list[tuple[str, bool, bool]]:
    with owner_connection(settings) as conn:
        return conn.execute(TENANT_TABLES_SQL).fetchall()


def runtime_privileges(settings: Settings, table: str) -> set[str]:
    with owner_connection(settings) as conn:
        return {
            privilege
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
            # Column grants count too (api_keys: every column but the key hash); DELETE has none.
            if conn.execute(f"SELECT {'has_table_privilege' if privilege == 'DELETE' else 'has_any_column_privilege'}(%s, %s, %s)",
                            (settings.runtime_role, f"public.{table}", privilege)).fetchone()[0]
        }


def updatable_column(settings: Settings, table: str) -> str:
    with owner_connection(settings) as conn:
        return conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = %s AND has_column_privilege(%s, %s, column_name, 'UPDATE')"
            " ORDER BY column_name <> 'tenant_id', ordinal_position LIMIT 1",
            (table, settings.runtime_role, f"public.{table}")).fetchone()[0]


def test_catalog_lists_the_tenant_tables(database: Settings) -> None:
    names = {row[0] for row in tenant_tables(database)}
    assert {"tenants", "webhook_events", "orders", "order_attributions", "channel_daily"} <= names


def test_every_tenant_table_forces_one_nullif_guarded_policy(database: Settings) -> None:
    with owner_connection(database) as conn:
        for table, enabled, forced in tenant_tables(database):
            assert enabled and forced, f"{table}: row-level security must be enabled and forced"
            policies = conn.execute(
                "SELECT qual, with_check FROM pg_policies WHERE schemaname = 'public' AND tablename = %s",
                (table,),
            ).fetchall()
            assert len(policies) == 1, f"{table}: expected exactly one policy"
            using, check = policies[0]
            for clause in (using, check):
                assert clause and "NULLIF" in clause and "app.tenant_id" in clause, (table, clause)


def test_tenant_id_leads_every_primary_and_unique_key(database: Settings) -> None:
    with owner_connection(database) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indexrelid::regclass::text, a.attname"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]"
            " WHERE (i.indisunique OR i.indisprimary) AND c.relnamespace = 'public'::regnamespace"
            "   AND c.relname = ANY(%s)",
            ([row[0] for row in tenant_tables(database)],),
        ).fetchall()
    assert rows
    for table, index, first_column in rows:
        assert first_column == "tenant_id", f"{table}: {index} does not lead with tenant_id"


async def test_rows_are_invisible_and_untouchable_across_tenants(
        database: Settings, runtime_pool, worker_pool, tenant_factory) -> None:
    tenant_a, tenant_b = tenant_factory("A"), tenant_factory("B")
    await populate_every_tenant_table(database, worker_pool, tenant_a)

    with owner_connection(database) as conn:
        samples = {}
        for table, _, _ in tenant_tables(database):
            row = conn.execute(
                f"SELECT to_jsonb(t) FROM {table} t WHERE tenant_id = %s LIMIT 1", (tenant_a.tenant_id,)
            ).fetchone()
            assert row is not None, f"{table}: add a row for it in populate_every_tenant_table"
            samples[table] = row[0]

    for table, sample in samples.items():
        granted = runtime_privileges(database, table)
        if "SELECT" in granted:
            async with tenant_transaction(runtime_pool, tenant_a.tenant_id) as conn:
                assert await conn.fetchval(f"SELECT count(*) FROM {table}") > 0, table
            async with tenant_transaction(runtime_pool, tenant_b.tenant_id) as conn:
                assert await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_a.tenant_id) == 0, table
            async with runtime_pool.acquire() as conn:
                assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, f"{table} without context"
        else:
            async with tenant_transaction(runtime_pool, tenant_a.tenant_id) as conn:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetchval(f"SELECT count(*) FROM {table}")

        # Writing tenant A's row while acting as tenant B must be refused (generated columns
        # are the database's to write).
        with owner_connection(database) as conn:
            columns = ", ".join(r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = %s AND is_generated = 'NEVER' ORDER BY ordinal_position",
                (table,)).fetchall())
        with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.UniqueViolationError)) as raised:
            async with tenant_transaction(runtime_pool, tenant_b.tenant_id) as conn:
                await conn.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns}"
                    f" FROM jsonb_populate_record(NULL::{table}, $1)", sample)
        assert isinstance(raised.value, asyncpg.InsufficientPrivilegeError), table

        if "UPDATE" in granted:
            column = updatable_column(database, table)
            async with tenant_transaction(runtime_pool, tenant_b.tenant_id) as conn:
                status = await conn.execute(
                    f"UPDATE {table} SET {column} = {column} WHERE tenant_id = $1", tenant_a.tenant_id)
                assert status == "UPDATE 0", table
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with tenant_transaction(runtime_pool, tenant_a.tenant_id) as conn:
                    await conn.execute(f"UPDATE {table} SET tenant_id = $1", tenant_b.tenant_id)
        if "DELETE" in granted:
            async with tenant_transaction(runtime_pool, tenant_b.tenant_id) as conn:
                status = await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_a.tenant_id)
                assert status == "DELETE 0", table


async def test_runtime_role_cannot_bypass_or_alter(database: Settings, runtime_pool) -> None:
    async with runtime_pool.acquire() as conn:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
        assert not any(role.values())
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        ) == 0
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_proc WHERE proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        ) == 0
        for statement in (
            "SET row_security = off; SELECT count(*) FROM orders",
            "ALTER TABLE orders DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE orders NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY tenant_isolation ON orders",
            "ALTER TABLE orders ADD COLUMN sneaky integer",
            "CREATE TABLE sneaky (id integer)",
            "TRUNCATE orders",
        ):
            with pytest.raises(asyncpg.PostgresError) as raised:
                await conn.execute(statement)
            assert isinstance(raised.value, (asyncpg.InsufficientPrivilegeError,
                                             asyncpg.FeatureNotSupportedError)), statement


async def test_runtime_role_never_sees_signing_secrets_in_clear(database: Settings, runtime_pool,
                                                                tenant_factory) -> None:
    tenant = tenant_factory()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
            await conn.fetch("SELECT * FROM webhook_source_secrets")
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM webhook_sources") == 1
        sources = await conn.fetch("SELECT * FROM webhook_sources")
    token = tenant.source_url.rsplit("/", 1)[-1]
    row = await runtime_pool.fetchrow(
        "SELECT * FROM resolve_source($1, $2)", tenant.tenant_id, credentials.digest(token))
    assert row is not None and len(row["secrets"]) == 1
    assert SHOPIFY_SECRET.encode() not in row["secrets"][0]
    for source in sources:
        assert SHOPIFY_SECRET not in repr(dict(source))
    # The same lookup with another tenant's id finds nothing.
    other = tenant_factory()
    assert await runtime_pool.fetchrow(
        "SELECT * FROM resolve_source($1, $2)", other.tenant_id, credentials.digest(token)) is None


async def test_runtime_role_reads_only_its_own_tenant_row(database: Settings, runtime_pool,
                                                          tenant_factory) -> None:
    tenant_a, tenant_b = tenant_factory("A"), tenant_factory("B")
    async with tenant_transaction(runtime_pool, tenant_a.tenant_id) as conn:
        rows = await conn.fetch("SELECT tenant_id FROM tenants")
    assert [r["tenant_id"] for r in rows] == [tenant_a.tenant_id]
    assert tenant_b.tenant_id not in [r["tenant_id"] for r in rows]
