"""The worker role, connected as the Celery worker connects: the runtime role's grants under the
same row-level security (test_runtime_role.py sweeps every relation for both roles), plus the
functions that list tenants for its schedules, and nothing more."""

from __future__ import annotations

import asyncpg
import pytest
from db_helpers import ingest_shopify, order_body
from psycopg.conninfo import conninfo_to_dict
from security_catalog import RUNTIME_DEFINER_FUNCTIONS, WORKER_DEFINER_FUNCTIONS, callable_definers

from skeldir.base.config import Settings
from skeldir.base.db import owner_connection

pytestmark = pytest.mark.anyio


def test_it_may_call_the_lookups_and_the_schedules_functions_alone(database: Settings) -> None:
    with owner_connection(database) as conn:
        assert callable_definers(conn, database.worker_role) == (
            RUNTIME_DEFINER_FUNCTIONS | WORKER_DEFINER_FUNCTIONS)


async def test_it_is_unprivileged_and_inherits_only_the_runtime_role(
        database: Settings, worker_pool, admin_url: str) -> None:
    async with worker_pool.acquire() as conn:
        role = await conn.fetchrow(
            "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication"
            " FROM pg_roles WHERE rolname = current_user")
        assert tuple(role) == (database.worker_role, False, False, False, False, False)
        assert [row[0] for row in await conn.fetch(
            "SELECT roleid::regrole::text FROM pg_auth_members WHERE member ="
            " (SELECT oid FROM pg_roles WHERE rolname = current_user)")] == [
                database.runtime_role]
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_shdepend WHERE deptype = 'o' AND refobjid ="
            " (SELECT oid FROM pg_roles WHERE rolname = current_user)") == 0
        superuser = conninfo_to_dict(admin_url).get("user") or "postgres"
        for statement in [f'SET ROLE "{database.owner_role}"', f'SET ROLE "{superuser}"',
                          "ALTER ROLE CURRENT_USER BYPASSRLS",
                          f'GRANT "{database.owner_role}" TO CURRENT_USER']:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)


async def test_the_learners_tenant_list_reaches_back_no_further_than_its_window(
        database: Settings, worker_pool, tenant_factory) -> None:
    # Without a tenant context the worker role may list tenant ids for the learner, but only
    # those active in its 30-day window, however far back the caller asks.
    dormant, active = tenant_factory("dormant"), tenant_factory("active")
    with owner_connection(database) as conn:
        conn.execute(
            "INSERT INTO touchpoints (tenant_id, touchpoint_id, visitor_id, occurred_at,"
            " received_at) VALUES (%s, 'old', 'v', now() - interval '40 days',"
            " now() - interval '40 days'), (%s, 'new', 'v', now(), now()),"
            # A browser's clock is the sender's to choose: a recent occurred_at on an old
            # delivery does not make a tenant active.
            " (%s, 'forged', 'v', now(), now() - interval '40 days')",
            (dormant.tenant_id, active.tenant_id, dormant.tenant_id))
        conn.commit()
    listed = {row[0] for row in await worker_pool.fetch(
        "SELECT * FROM tenants_with_touchpoints('-infinity')")}
    assert active.tenant_id in listed
    assert dormant.tenant_id not in listed


async def test_the_sweepers_functions_answer_it_without_a_tenant_context(
        database: Settings, worker_pool, tenant_factory) -> None:
    waiting = tenant_factory("waiting")
    # Ingested and not yet attributed: no chain has been queued for it.
    assert (await ingest_shopify(worker_pool, waiting, order_body(1))).needs_chain
    listed = {row[0] for row in await worker_pool.fetch(
        "SELECT * FROM tenants_needing_recompute('0', '0')")}
    assert waiting.tenant_id in listed
    assert await worker_pool.fetchval("SELECT abandon_dead_recompute_jobs(NULL)") >= 0
