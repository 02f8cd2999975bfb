"""The runtime role, connected as the API connects, against every relation and function the
catalog lists: what it cannot read, write, call or become. (The worker role, which inherits its
grants, is checked in test_worker_role.py.)

tests/deployment/test_row_level_security.py proves two tenants' contexts apart on the tables that
have a tenant_id. This module covers every relation (a table without tenant_id must be declared
shared), connections with no tenant context at all, writes with no filter, and the ways out.
"""

from __future__ import annotations

import asyncpg
import pytest
from db_helpers import populate_every_tenant_table
from psycopg.conninfo import conninfo_to_dict
from security_catalog import (
    RUNTIME_DEFINER_FUNCTIONS,
    SHARED_RELATIONS,
    WORKER_DEFINER_FUNCTIONS,
    callable_definers,
    readable_columns,
    relations,
    unguarded,
)

from skeldir.base import credentials
from skeldir.base.config import Settings
from skeldir.base.db import SET_TENANT_SQL, owner_connection, tenant_transaction

pytestmark = pytest.mark.anyio


def test_every_relation_is_tenant_guarded_or_declared_shared(database: Settings) -> None:
    with owner_connection(database) as conn:
        found = relations(conn)
    assert unguarded(found) == []
    assert set(SHARED_RELATIONS) <= {relation.name for relation in found}, "stale shared entry"
    assert len([relation for relation in found if relation.has_tenant_id]) >= 15


def test_the_guard_check_catches_what_a_careless_migration_would_add(database: Settings) -> None:
    with owner_connection(database) as conn:
        # Made and inspected in one transaction that is rolled back: nobody else sees them.
        conn.execute("CREATE TABLE order_notes (tenant_id uuid NOT NULL, note text)")
        conn.execute("CREATE TABLE exchange_log (day date, note text)")
        conn.execute("CREATE VIEW order_ids AS SELECT tenant_id, order_id FROM orders")
        conn.execute("CREATE MATERIALIZED VIEW order_counts AS"
                     " SELECT tenant_id, count(*) FROM orders GROUP BY tenant_id")
        conn.execute("ALTER TABLE fx_rates ADD COLUMN source_id uuid")
        problems = unguarded(relations(conn))
        conn.rollback()
    assert problems == [
        "public.exchange_log has no tenant_id and is not declared shared",
        "public.fx_rates is declared shared but has a uuid column",
        "public.order_counts cannot carry row-level security",
        "public.order_ids is a view that reads as its owner",
        "public.order_notes lacks enabled and forced row-level security",
    ]


@pytest.mark.parametrize("role", ["runtime", "worker"])
async def test_no_relation_yields_a_tenant_row_without_a_tenant_context(
        database: Settings, worker_pool, tenant_factory, role: str) -> None:
    # The worker role inherits the runtime role's grants: row-level security binds it alike.
    url, role_name = {"runtime": (database.database_url, database.runtime_role),
                      "worker": (database.worker_database_url, database.worker_role)}[role]
    tenant = tenant_factory("A")
    await populate_every_tenant_table(database, worker_pool, tenant)
    with owner_connection(database) as conn:
        found = relations(conn)
        columns = {r.name: readable_columns(conn, role_name, r.name) for r in found}
        tenant_ids = [str(row[0]) for row in conn.execute("SELECT tenant_id FROM tenants")]
        for relation in found:
            if relation.has_tenant_id:  # so that reading nothing below means something
                assert conn.execute(f"SELECT count(*) FROM {relation.name} WHERE tenant_id = %s",
                                    (tenant.tenant_id,)).fetchone()[0] > 0, relation.name

    fresh = await asyncpg.connect(url)
    # A pooled connection after a tenant transaction: the setting reads '' rather than unset.
    reused = await asyncpg.connect(url)
    try:
        async with reused.transaction():
            await reused.execute(SET_TENANT_SQL, str(tenant.tenant_id))
        assert await reused.fetchval("SELECT current_setting('app.tenant_id', true)") == ""
        assert await fresh.fetchval("SELECT current_setting('app.tenant_id', true)") is None
        for relation in found:
            readable = columns[relation.name]
            for conn in (fresh, reused):
                if not readable:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.fetch(f"SELECT 1 FROM {relation.name} LIMIT 1")
                    continue
                rows = await conn.fetch(f"SELECT to_jsonb(r)::text FROM"
                                        f" (SELECT {', '.join(readable)} FROM {relation.name}) r")
                if relation.name in SHARED_RELATIONS:
                    text = "\n".join(row[0] for row in rows)
                    assert not [t for t in tenant_ids if t in text], relation.name
                else:
                    assert rows == [], f"{relation.name} without a tenant context"
        # A context that is not a tenant id is an error, never a wider view.
        await fresh.execute("SET app.tenant_id = 'all'")
        for relation in found:
            if relation.has_tenant_id and columns[relation.name]:
                with pytest.raises(asyncpg.InvalidTextRepresentationError):
                    await fresh.fetch(f"SELECT 1 FROM {relation.name} LIMIT 1")
    finally:
        await fresh.close()
        await reused.close()


async def test_the_tenants_table_shows_a_tenant_its_own_row_only(
        database: Settings, runtime_pool, tenant_factory) -> None:
    tenant_a, tenant_b = tenant_factory("A"), tenant_factory("B")
    async with tenant_transaction(runtime_pool, tenant_a.tenant_id) as conn:
        assert [r["tenant_id"] for r in await conn.fetch("SELECT tenant_id FROM tenants")] == [
            tenant_a.tenant_id]
        assert await conn.fetchrow("SELECT * FROM tenants WHERE tenant_id = $1",
                                   tenant_b.tenant_id) is None
    async with runtime_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tenants") == 0
        assert await conn.fetchrow("SELECT * FROM tenants WHERE tenant_id = $1",
                                   tenant_a.tenant_id) is None


async def test_api_key_hashes_are_out_of_the_runtime_roles_reach(
        database: Settings, runtime_pool, tenant_factory) -> None:
    tenant = tenant_factory()
    digest = credentials.digest(tenant.api_key)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        assert len(await conn.fetch("SELECT key_id, scope, label FROM api_keys")) == 3
    for statement, args in [
        ("SELECT key_hash FROM api_keys", ()),
        ("SELECT * FROM api_keys", ()),
        # Filtering or sorting on the hash would make a guessing oracle of it.
        ("SELECT key_id FROM api_keys WHERE key_hash = $1", (digest,)),
        ("SELECT key_id FROM api_keys ORDER BY key_hash", ()),
        ("UPDATE api_keys SET key_hash = $1", (digest,)),
        ("INSERT INTO api_keys (tenant_id, key_id, key_hash, scope) VALUES"
         " (current_setting('app.tenant_id')::uuid, gen_random_uuid(), $1, 'read')"
         " RETURNING key_hash", (b"x" * 32,)),
    ]:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
                await conn.fetch(statement, *args)
    found = await runtime_pool.fetch("SELECT * FROM resolve_api_key($1, $2)", tenant.tenant_id,
                                     digest)
    assert [set(row.keys()) for row in found] == [{"key_id", "scope"}]


def test_the_only_security_definer_functions_it_may_call_are_the_declared_lookups(
        database: Settings) -> None:
    with owner_connection(database) as conn:
        assert callable_definers(conn, database.runtime_role) == RUNTIME_DEFINER_FUNCTIONS


async def test_it_cannot_list_tenants_without_a_tenant_context(
        database: Settings, runtime_pool, tenant_factory) -> None:
    tenant_factory("A")
    for statement in ["SELECT * FROM tenants_with_touchpoints('-infinity')",
                      "SELECT * FROM tenants_needing_recompute('0', '0')",
                      "SELECT abandon_dead_recompute_jobs(NULL)",
                      "SELECT * FROM connectors_to_pull()",
                      "SELECT * FROM tenants_for_retention()"]:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await runtime_pool.fetch(statement)
    assert {statement.split("(")[0] for statement in WORKER_DEFINER_FUNCTIONS} == {
        "abandon_dead_recompute_jobs", "connectors_to_pull", "tenants_for_retention",
        "tenants_needing_recompute", "tenants_with_touchpoints"}


# A plausible argument of each type, so a function that lists tenants has every chance to:
# an open window, no grace, the caller's own tenant id where one is asked for.
_SAMPLE_ARGUMENTS = {
    "timestamp with time zone": "'-infinity'::timestamptz",
    "interval": "'0'::interval",
    "text": "''::text",
    "bytea": "'\\x00'::bytea",
    "uuid[]": "'{}'::uuid[]",
    "jsonb": "'{}'::jsonb",
    "integer": "0",
    "bigint": "0::bigint",
    "boolean": "false",
    "date": "current_date",
}


async def test_no_function_it_may_call_answers_with_another_tenants_id(
        database: Settings, runtime_pool, worker_pool, tenant_factory) -> None:
    caller, other = tenant_factory("caller"), tenant_factory("other")
    await populate_every_tenant_table(database, worker_pool, other)
    with owner_connection(database) as conn:
        # Work left for the schedules: a recent touchpoint and an order waiting to be attributed.
        conn.execute("INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at,"
                     " received_at) VALUES (%s, 'recent', 'v', now(), now())", (other.tenant_id,))
        conn.execute("SELECT mark_orders_pending(%s, array(SELECT order_id FROM orders"
                     " WHERE tenant_id = %s))", (other.tenant_id, other.tenant_id))
        conn.commit()
        callable_functions = conn.execute(
            "SELECT p.oid::regproc::text, p.oid::regprocedure::text,"
            " ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t)"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND has_function_privilege(%s, p.oid, 'EXECUTE') ORDER BY 2",
            (database.runtime_role,)).fetchall()
    assert len(callable_functions) >= 8
    answered = []
    async with runtime_pool.acquire() as conn:
        # Every call is rolled back (some write): only what each one answers matters.
        transaction = conn.transaction()
        await transaction.start()
        try:
            for name, signature, argument_types in callable_functions:
                arguments = ", ".join(
                    f"'{caller.tenant_id}'::uuid" if kind == "uuid"
                    else _SAMPLE_ARGUMENTS.get(kind, f"NULL::{kind}") for kind in argument_types)
                try:
                    async with conn.transaction():  # a savepoint: a refused call is an answer
                        rows = await conn.fetch(f"SELECT to_jsonb(r)::text FROM"
                                                f" {name}({arguments}) AS r")
                except asyncpg.PostgresError:
                    continue
                answered.append(signature)
                text = "\n".join(row[0] for row in rows)
                assert str(other.tenant_id) not in text, f"{signature} answers another tenant"
        finally:
            await transaction.rollback()
    assert {"resolve_source(uuid,bytea)", "merged_hints(jsonb,jsonb)"} <= set(answered)


async def test_lookups_answer_only_for_the_tenant_the_credential_names(
        database: Settings, runtime_pool, tenant_factory) -> None:
    tenant_a, tenant_b = tenant_factory("A"), tenant_factory("B")
    for query, credential in [
        ("SELECT * FROM resolve_api_key($1, $2)", tenant_a.api_key),
        ("SELECT * FROM resolve_source_by_key($1, $2, 'shopify')", tenant_a.webhook_key),
    ]:
        assert await runtime_pool.fetch(query, tenant_a.tenant_id, credentials.digest(credential))
        assert (
            await runtime_pool.fetch(query, tenant_b.tenant_id, credentials.digest(credential))
            == []
        )


async def test_functions_and_server_powers_it_was_not_granted_are_refused(
        database: Settings, runtime_pool) -> None:
    with owner_connection(database) as conn:
        owner_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        # Whatever a migration adds without granting it to the runtime role (none so far).
        not_granted = [row[0] for row in conn.execute(
            "SELECT format('SELECT %%s(%%s)', p.oid::regproc, array_to_string(ARRAY("
            "  SELECT 'NULL::' || format_type(t, NULL) FROM unnest(p.proargtypes) t), ', '))"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.prokind = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND NOT has_function_privilege(%s, p.oid, 'EXECUTE')", (database.runtime_role,))]
        statements = not_granted + [
            "SELECT pg_read_file('PG_VERSION')",
            "SELECT pg_read_binary_file('PG_VERSION')",
            "SELECT pg_ls_dir('.')",
            "SELECT pg_stat_file('PG_VERSION')",
            "SELECT lo_import('/etc/hostname')",
            "SELECT pg_reload_conf()",
            "SELECT pg_rotate_logfile()",
            f"SELECT pg_terminate_backend({owner_pid})",
            f"SELECT pg_cancel_backend({owner_pid})",
            "COPY fx_rates TO '/tmp/skeldir-runtime-copy'",
            "COPY (SELECT 1) TO PROGRAM 'true'",
        ]
        for statement in statements:
            async with runtime_pool.acquire() as runtime:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await runtime.execute(statement)


async def test_update_and_delete_without_a_filter_touch_only_the_tenant_in_context(
        database: Settings, runtime_pool, worker_pool, tenant_factory) -> None:
    tenant_a, tenant_b = tenant_factory("A"), tenant_factory("B")
    for tenant in (tenant_a, tenant_b):
        await populate_every_tenant_table(database, worker_pool, tenant)
    with owner_connection(database) as conn:
        writable = conn.execute(
            "SELECT c.oid::regclass::text, has_table_privilege(%(role)s, c.oid, 'DELETE'),"
            " (SELECT quote_ident(a.attname) FROM pg_attribute a WHERE a.attrelid = c.oid"
            "  AND a.attnum > 0 AND NOT a.attisdropped"
            "  AND has_column_privilege(%(role)s, c.oid, a.attnum, 'UPDATE') LIMIT 1)"
            " FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid AND t.attname = 'tenant_id'"
            " WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace",
            {"role": database.runtime_role}).fetchall()
    statements = [f"UPDATE {table} SET {column} = {column} RETURNING tenant_id"
                  for table, _, column in writable if column]
    statements += [f"DELETE FROM {table} RETURNING tenant_id"
                   for table, deletes, _ in writable if deletes]
    assert len(statements) >= 15
    async with runtime_pool.acquire() as conn:
        for statement in statements:
            # Every write is rolled back: only which rows it reached matters.
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute(SET_TENANT_SQL, str(tenant_b.tenant_id))
                reached = {row[0] for row in await conn.fetch(statement)}
            finally:
                await transaction.rollback()
            assert reached == {tenant_b.tenant_id}, statement
            transaction = conn.transaction()
            await transaction.start()
            try:
                assert await conn.fetch(statement) == [], f"{statement} without a context"
            finally:
                await transaction.rollback()


async def test_it_cannot_become_another_role_or_switch_policies_off(
        database: Settings, runtime_pool, tenant_factory, admin_url: str) -> None:
    tenant = tenant_factory()
    superuser = conninfo_to_dict(admin_url).get("user") or "postgres"
    owner = database.owner_role
    for statement in [
        f'SET ROLE "{owner}"',
        f'SET ROLE "{superuser}"',
        f'SET SESSION AUTHORIZATION "{owner}"',
        f"SELECT set_config('role', '{owner}', false)",
        "ALTER ROLE CURRENT_USER BYPASSRLS",
        "ALTER ROLE CURRENT_USER SUPERUSER",
        f'GRANT "{owner}" TO CURRENT_USER',
        "GRANT pg_read_all_data TO CURRENT_USER",
        "CREATE ROLE runtime_accomplice",
        "CREATE SCHEMA runtime_schema",
        "CREATE FUNCTION public.runtime_function() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER TABLE fx_rates OWNER TO CURRENT_USER",
        "ALTER VIEW allocation_summary SET (security_invoker = false)",
    ]:
        async with runtime_pool.acquire() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
            assert await conn.fetchval("SELECT current_user") == database.runtime_role

    with owner_connection(database) as conn:
        guarded = [relation.name for relation in relations(conn) if relation.has_tenant_id
                   and readable_columns(conn, database.runtime_role, relation.name)]
    for name in guarded:
        # Turned off, row security makes a policy-bound query fail instead of skipping it.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
                await conn.execute("SET LOCAL row_security = off")
                await conn.fetch(f"SELECT 1 FROM {name} LIMIT 1")


async def test_it_is_unprivileged_and_owns_nothing_anywhere(database: Settings,
                                                           runtime_pool) -> None:
    async with runtime_pool.acquire() as conn:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication"
            " FROM pg_roles WHERE rolname = current_user")
        assert not any(role.values()), dict(role)
        assert await conn.fetch(
            "SELECT roleid::regrole FROM pg_auth_members WHERE member ="
            " (SELECT oid FROM pg_roles WHERE rolname = current_user)") == []
        # Every object of every kind, in every database: pg_shdepend records their owners.
        owned = await conn.fetch(
            "SELECT d.dbid, pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_shdepend d"
            " WHERE d.deptype = 'o'"
            " AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            " AND coalesce((pg_identify_object(d.classid, d.objid, d.objsubid)).schema, '')"
            "     !~ '^pg_(toast_)?temp_'")
        assert owned == []
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_default_acl WHERE defaclrole ="
            " (SELECT oid FROM pg_roles WHERE rolname = current_user)") == 0
        assert not await conn.fetchval("SELECT has_schema_privilege('public', 'CREATE')")
        assert not await conn.fetchval(
            "SELECT has_database_privilege(current_database(), 'CREATE')")
