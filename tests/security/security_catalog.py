"""What the catalog says about every relation and function, read as the owner, for the checks
that must cover whatever a later migration adds (never a hand-kept list of tenant tables)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

# Relations that hold no tenant's data, so carry no tenant_id and no policy. A table that is
# neither here nor guarded by row-level security fails the checks.
SHARED_RELATIONS = {
    "public.fx_rates": "daily exchange rates: market data every tenant reads alike",
    "public.alembic_version": "the schema's migration revision",
}

# The only SECURITY DEFINER functions the runtime role (the API) may call: lookups made before
# any tenant context exists, each answering for one tenant's credential hash.
RUNTIME_DEFINER_FUNCTIONS = {
    "resolve_api_key(uuid,bytea)",
    "resolve_source(uuid,bytea)",
    "resolve_source_by_key(uuid,bytea,text)",
}

# What the worker role may call beyond them: its schedules serve every tenant, so they ask which
# tenants have work, answered with tenant ids (or a count) and never a tenant's rows.
WORKER_DEFINER_FUNCTIONS = {
    # The sweeper's: marks abandoned the jobs whose run holds no lock; answers a count only.
    "abandon_dead_recompute_jobs(uuid)",
    # The connector beat's: ids, platform, status and last success of every connector; never an
    # account or a credential.
    "connectors_to_pull()",
    "tenants_needing_recompute(interval,interval)",
    # The daily retention run's: tenant ids and their retention periods, never their rows.
    "tenants_for_retention()",
    "tenants_with_touchpoints(timestamp with time zone)",
}

_USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'"
)


@dataclass(frozen=True)
class Relation:
    name: str  # schema-qualified and quoted as needed
    kind: str  # pg_class.relkind
    row_security: bool
    forced: bool
    security_invoker: bool
    policies: int
    column_types: dict[str, str]

    @property
    def has_tenant_id(self) -> bool:
        return "tenant_id" in self.column_types


def relations(conn: psycopg.Connection) -> list[Relation]:
    """Every table, view, materialized view and foreign table outside the system schemas
    (temporary tables of live sessions excluded)."""
    rows = conn.execute(
        "SELECT c.oid::regclass::text, c.relkind, c.relrowsecurity, c.relforcerowsecurity,"
        " coalesce('security_invoker=true' = ANY(c.reloptions), false),"
        " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),"
        " (SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))"
        "  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMAS} ORDER BY 1"
    ).fetchall()
    return [Relation(_qualified(name), *rest[:-1], rest[-1] or {}) for name, *rest in rows]


def unguarded(relation_list: list[Relation]) -> list[str]:
    """Why each relation that could hold tenant rows does not keep them apart."""
    problems = []
    for relation in relation_list:
        if relation.name in SHARED_RELATIONS:
            if relation.has_tenant_id or "uuid" in relation.column_types.values():
                problems.append(f"{relation.name} is declared shared but has a uuid column")
        elif not relation.has_tenant_id:
            problems.append(f"{relation.name} has no tenant_id and is not declared shared")
        elif relation.kind == "v":
            if not relation.security_invoker:
                problems.append(f"{relation.name} is a view that reads as its owner")
        elif relation.kind in ("m", "f"):
            problems.append(f"{relation.name} cannot carry row-level security")
        elif not (relation.row_security and relation.forced and relation.policies):
            problems.append(f"{relation.name} lacks enabled and forced row-level security")
    return problems


def callable_definers(conn: psycopg.Connection, role: str) -> set[str]:
    """The SECURITY DEFINER functions `role` may execute (they run as their owner, who is not
    bound by row-level security)."""
    return {
        row[0]
        for row in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            f" WHERE p.prosecdef AND {_USER_SCHEMAS}"
            " AND has_function_privilege(%s, p.oid, 'EXECUTE')",
            (role,),
        )
    }


def readable_columns(conn: psycopg.Connection, role: str, relation: str) -> list[str]:
    """The columns `role` may SELECT (all of them, or those of its column grants)."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attnum > 0 AND NOT attisdropped"
            " AND has_column_privilege(%s, attrelid, attnum, 'SELECT') ORDER BY attnum",
            (relation, role),
        )
    ]


def _qualified(regclass_text: str) -> str:
    # regclass prints names on the search path unqualified; every relation here is public's
    # unless it says otherwise.
    return regclass_text if "." in regclass_text else f"public.{regclass_text}"
