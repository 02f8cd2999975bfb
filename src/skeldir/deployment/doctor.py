"""`skeldir doctor`: check that a deployment keeps tenants apart and can run.

Each check takes what it inspects (the owner's, runtime or worker role's connection, settings) and
returns one result; `run_checks` opens the connections and runs them all. A database check that
cannot connect fails rather than being skipped: roles that cannot be inspected are not known
to be safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass

import httpx
import psycopg
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from cryptography.exceptions import InvalidTag
from kombu import Connection as BrokerConnection
from kombu.utils.url import maybe_sanitize_url

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import (
    DatabaseNotConfigured,
    owner_connection,
    runtime_connection,
    worker_connection,
)
from skeldir.deployment import migrate

OK, FAIL, WARN = "ok", "fail", "warn"
CONNECT_TIMEOUT_SECONDS = 3
# The one policy of every tenant table, as PostgreSQL prints it back.
TENANT_POLICY = (
    "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)"
)
_USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
)
_ROLE_FLAGS = ("SUPERUSER", "BYPASSRLS", "CREATEROLE", "CREATEDB", "REPLICATION")
# The functions that answer with tenant ids across tenants, for the worker's schedules: the
# worker role may execute them, the runtime role (the API) may not.
TENANT_LISTING_FUNCTIONS = (
    "tenants_with_touchpoints(timestamp with time zone)",
    "tenants_needing_recompute(interval, interval)",
    "abandon_dead_recompute_jobs(uuid)",
    "connectors_to_pull()",
    "tenants_for_retention()",
)


@dataclass(frozen=True)
class Finding:
    status: str
    detail: str
    # What an operator runs or changes to make a failing check pass.
    fix: str | None = None


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    detail: str
    fix: str | None = None


def ok(detail: str) -> Finding:
    return Finding(OK, detail)


def fail(detail: str, fix: str) -> Finding:
    return Finding(FAIL, detail, fix)


def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, in a fixed order, one result each."""
    with ExitStack() as stack:
        owner, owner_error = _open(stack, lambda: owner_connection(settings, autocommit=True))
        runtime, runtime_error = _open(stack, lambda: runtime_connection(settings))
        worker, worker_error = _open(stack, lambda: worker_connection(settings))
        no_owner = _unconnected("owner", owner_error)
        no_runtime = _unconnected("runtime", runtime_error)
        no_worker = _unconnected("worker", worker_error)
        findings = {
            "runtime role attributes": no_runtime or _guarded(runtime_role_attributes, runtime),
            "runtime role owns nothing": no_runtime or _guarded(runtime_role_owns_nothing, runtime),
            "runtime role creates nothing": (
                no_runtime or _guarded(runtime_role_creates_nothing, runtime)
            ),
            "owner role": no_owner or no_runtime or _guarded(owner_is_not_runtime, owner, runtime),
            "worker role": no_worker or no_runtime or _guarded(worker_role, worker, runtime),
            "tenant listing functions": (
                no_runtime or no_worker or _guarded(tenant_listing_functions, runtime, worker)
            ),
            "row-level security": no_owner or _guarded(row_level_security, owner),
            "security definer functions": no_owner or _guarded(security_definer_search_path, owner),
            "migrations": no_owner or _guarded(migrations_at_head, owner, settings),
            "secret key": no_owner or _guarded(secret_key_decrypts, owner, settings),
            "retention": no_owner or _guarded(retention_settings, owner),
            "privacy requests": no_owner or _guarded(overdue_privacy_requests, owner),
        }
    findings["broker"] = broker_reachable(settings.broker_url)
    findings["api"] = api_answers(settings.public_url)
    return [CheckResult(name, f.status, f.detail, f.fix) for name, f in findings.items()]


def runtime_role_attributes(runtime: psycopg.Connection) -> Finding:
    role, *flags = runtime.execute(
        "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    # A role it belongs to lends it that role's privileges (pg_read_all_data, the owner, ...).
    member_of = [
        row[0]
        for row in runtime.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            " ORDER BY 1"
        )
    ]
    problems = [flag for flag, on in zip(_ROLE_FLAGS, flags) if on]
    problems += [f"a member of {group}" for group in member_of]
    if problems:
        return fail(
            f"{role} is {', '.join(problems)}: row-level security does not bind it",
            f'ALTER ROLE "{role}" NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION'
            + "".join(f'; REVOKE "{group}" FROM "{role}"' for group in member_of),
        )
    return ok(f"{role} is NOSUPERUSER NOBYPASSRLS and in no other role")


def runtime_role_owns_nothing(runtime: psycopg.Connection) -> Finding:
    # pg_shdepend records the owner of every object in every database of the server. Temporary
    # tables (the recompute keeps two per session) end with their session and guard nothing.
    owned = runtime.execute(
        "WITH here AS (SELECT oid FROM pg_database WHERE datname = current_database())"
        " SELECT CASE WHEN d.dbid IN (0, (SELECT oid FROM here))"
        " THEN pg_describe_object(d.classid, d.objid, d.objsubid)"
        " ELSE 'an object in database ' || (SELECT datname FROM pg_database WHERE oid = d.dbid)"
        " END FROM pg_shdepend d WHERE d.deptype = 'o'"
        " AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        " AND NOT (d.dbid = (SELECT oid FROM here) AND coalesce((pg_identify_object("
        "   d.classid, d.objid, d.objsubid)).schema, '') ~ '^pg_(toast_)?temp_')"
        " ORDER BY 1"
    ).fetchall()
    role = runtime.execute("SELECT current_user").fetchone()[0]
    if owned:
        shown = ", ".join(row[0] for row in owned[:5]) + (", ..." if len(owned) > 5 else "")
        return fail(
            f"{role} owns {len(owned)} object(s): {shown}; an owner can turn off their security",
            "hand each to the owner role: ALTER <kind> <object> OWNER TO <owner role>",
        )
    return ok(f"{role} owns no object")


def runtime_role_creates_nothing(runtime: psycopg.Connection) -> Finding:
    role, in_public, in_database = runtime.execute(
        "SELECT current_user, has_schema_privilege('public', 'CREATE'),"
        " has_database_privilege(current_database(), 'CREATE')"
    ).fetchone()
    places = [
        place for place, can in (("schema public", in_public), ("the database", in_database)) if can
    ]
    if places:
        return fail(
            f"{role} can create in {' and '.join(places)}, and would own what it creates",
            f'REVOKE CREATE ON SCHEMA public FROM PUBLIC, "{role}";'
            f' REVOKE CREATE ON DATABASE <database> FROM PUBLIC, "{role}"',
        )
    return ok(f"{role} cannot create in schema public")


def owner_is_not_runtime(owner: psycopg.Connection, runtime: psycopg.Connection) -> Finding:
    owner_role = owner.execute("SELECT current_user").fetchone()[0]
    runtime_role, member = runtime.execute(
        "SELECT current_user, pg_has_role(current_user, %s, 'MEMBER')", (owner_role,)
    ).fetchone()
    if owner_role == runtime_role or member:
        how = "is the owner role" if owner_role == runtime_role else f"is a member of {owner_role}"
        return fail(
            f"the runtime role {runtime_role} {how}: it owns the tables it must be fenced from",
            "give SKELDIR_DATABASE_URL and SKELDIR_OWNER_DATABASE_URL two separate roles",
        )
    return ok(f"{owner_role} owns the schema; {runtime_role} only uses it")


def worker_role(worker: psycopg.Connection, runtime: psycopg.Connection) -> Finding:
    """The worker's role is its own, bound by row-level security, and lent privileges by the
    runtime role alone (whose table grants it needs)."""
    runtime_role = runtime.execute("SELECT current_user").fetchone()[0]
    role, *flags = worker.execute(
        "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    # Roles whose privileges it has: every role it is a member of, directly or not.
    lent_by = [
        row[0]
        for row in worker.execute(
            "SELECT rolname FROM pg_roles WHERE rolname <> current_user"
            " AND pg_has_role(current_user, oid, 'USAGE') ORDER BY 1"
        )
    ]
    if role == runtime_role:
        return fail(
            f"the worker connects as the runtime role {role}, which could then list every tenant",
            "create a worker role (docs/operations.md) and set SKELDIR_WORKER_DATABASE_URL to it",
        )
    problems = [flag for flag, on in zip(_ROLE_FLAGS, flags) if on]
    problems += [f"a member of {group}" for group in lent_by if group != runtime_role]
    if runtime_role not in lent_by:
        problems.append(f"without the privileges of {runtime_role}")
    if problems:
        return fail(
            f"{role} is {', '.join(problems)}",
            f'ALTER ROLE "{role}" NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION'
            f' INHERIT; GRANT "{runtime_role}" TO "{role}"'
            + "".join(f'; REVOKE "{group}" FROM "{role}"' for group in lent_by
                      if group != runtime_role),
        )
    return ok(f"{role} is NOSUPERUSER NOBYPASSRLS and inherits {runtime_role} alone")


def tenant_listing_functions(
    runtime: psycopg.Connection, worker: psycopg.Connection
) -> Finding:
    """The runtime role cannot list tenant ids without a tenant context; the worker can."""
    query = (
        "SELECT current_user, array_agg(f ORDER BY f) FILTER (WHERE to_regprocedure(f) IS NULL),"
        " array_agg(f ORDER BY f) FILTER (WHERE to_regprocedure(f) IS NOT NULL"
        "  AND has_function_privilege(f, 'EXECUTE'))"
        " FROM unnest(%s::text[]) AS f"
    )
    functions = list(TENANT_LISTING_FUNCTIONS)
    runtime_role, missing, runtime_may = runtime.execute(query, (functions,)).fetchone()
    worker_role_name, _, worker_may = worker.execute(query, (functions,)).fetchone()
    if missing:
        return fail(f"missing: {', '.join(missing)}", "skeldir migrate")
    if runtime_may:
        return fail(
            f"the runtime role {runtime_role} may list every tenant: {', '.join(runtime_may)}",
            "; ".join(
                f'REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC, "{runtime_role}"'
                for f in runtime_may
            ),
        )
    denied = sorted(set(functions) - set(worker_may or []))
    if denied:
        return fail(
            f"the worker role {worker_role_name} may not execute {', '.join(denied)}",
            "; ".join(
                f'GRANT EXECUTE ON FUNCTION {f} TO "{worker_role_name}"' for f in denied
            ),
        )
    return ok(f"only {worker_role_name}, not {runtime_role}, may list tenants")


def row_level_security(owner: psycopg.Connection) -> Finding:
    """Every relation with a tenant_id column keeps other tenants' rows out: a table by the one
    tenant policy, enabled and forced (else the table owner passes); a view by running as its
    caller (else it reads as its owner, who bypasses row-level security)."""
    rows = owner.execute(
        "SELECT n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,"
        " coalesce('security_invoker=true' = ANY(c.reloptions), false),"
        " ARRAY(SELECT concat_ws('|', p.polname, p.polcmd, p.polroles::text,"
        "                        pg_get_expr(p.polqual, p.polrelid),"
        "                        pg_get_expr(p.polwithcheck, p.polrelid))"
        "       FROM pg_policy p WHERE p.polrelid = c.oid AND p.polpermissive)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"
        "  AND NOT a.attisdropped"
        f" WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMAS} ORDER BY 1, 2"
    ).fetchall()
    # Permissive policies are OR-ed: any second one would let more rows in.
    expected = [f"tenant_isolation|*|{{0}}|{TENANT_POLICY}|{TENANT_POLICY}".replace(" ", "")]
    problems, fixes = [], []
    for schema, table, kind, enabled, forced, invoker, policies in rows:
        relation = table if schema == "public" else f"{schema}.{table}"
        if kind == "v":
            if not invoker:
                problems.append(f"{relation}: the view runs as its owner (no security_invoker)")
                fixes.append(f"ALTER VIEW {relation} SET (security_invoker = true)")
            continue
        if kind in ("m", "f"):
            problems.append(f"{relation}: a materialized view or foreign table has no policies")
            fixes.append(f"replace {relation} with a table under row-level security")
            continue
        if not enabled or not forced:
            problems.append(
                f"{relation}: row-level security is {'not forced' if enabled else 'disabled'}"
            )
            fixes.append(
                f"ALTER TABLE {relation} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"
            )
        if [policy.replace(" ", "") for policy in policies] != expected:
            problems.append(f"{relation}: its permissive policies are not just tenant_isolation")
            fixes.append(f"give {relation} the one policy tenant_isolation of the migrations")
    if not rows:
        return fail("no table has a tenant_id column", "skeldir migrate")
    if problems:
        return fail("; ".join(problems), "; ".join(fixes))
    return ok(f"enabled, forced and tenant-scoped on {len(rows)} relations")


def security_definer_search_path(owner: psycopg.Connection) -> Finding:
    functions = owner.execute(
        "SELECT p.oid::regprocedure::text, coalesce(p.proconfig, '{}')"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        f" WHERE p.prosecdef AND {_USER_SCHEMAS} ORDER BY 1"
    ).fetchall()
    unfixed = [
        function
        for function, config in functions
        if not any(setting.startswith("search_path=") for setting in config)
    ]
    if unfixed:
        return fail(
            f"no fixed search_path: {', '.join(unfixed)}; a caller's objects would run as owner",
            "ALTER FUNCTION <function> SET search_path = pg_catalog, pg_temp",
        )
    return ok(f"{len(functions)} with a fixed search_path")


def migrations_at_head(owner: psycopg.Connection, settings: Settings) -> Finding:
    fix = "skeldir migrate"
    scripts = ScriptDirectory.from_config(migrate.alembic_config(settings))
    heads = set(scripts.get_heads())
    try:
        current = {row[0] for row in owner.execute("SELECT version_num FROM alembic_version")}
    except psycopg.errors.UndefinedTable:
        return fail("the database was never migrated", fix)
    if current == heads:
        return ok(f"at head {', '.join(sorted(heads))}")
    if not current:
        return fail("alembic_version records no revision", fix)
    at = ", ".join(sorted(current))
    try:
        for revision in current:
            scripts.get_revision(revision)
    except CommandError:
        return fail(
            f"the database is at {at}, a revision this release does not know",
            "run the release that migrated it (or a newer one)",
        )
    return fail(f"at {at}, behind head {', '.join(sorted(heads))}", fix)


def secret_key_decrypts(owner: psycopg.Connection, settings: Settings) -> Finding:
    fix = "set SKELDIR_SECRET_KEY to the key the secrets were stored with"
    try:
        box = secret_box(settings)
    except (RuntimeError, ValueError) as exc:
        return fail(str(exc), fix)
    stored = owner.execute(
        "SELECT source_id, ciphertext FROM webhook_source_secrets ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    if stored is None:
        return ok("present; no stored secret to decrypt yet")
    source_id, ciphertext = stored
    try:
        box.decrypt(bytes(ciphertext), context=uuid.UUID(str(source_id)).bytes)
    except InvalidTag:
        return fail("the key does not decrypt the stored secrets", fix)
    return ok("present and decrypts the stored secrets")


# A privacy request must be answered within a month (GDPR art. 12(3)).
PRIVACY_REQUEST_DAYS = 30
_RETENTION_COLUMNS = (
    ("retention_touchpoint_days", "touchpoints"),
    ("retention_payload_days", "payload copies"),
    ("retention_dead_letter_days", "dead letters after replay"),
)


def retention_settings(owner: psycopg.Connection) -> Finding:
    """The retention periods in force: the defaults, and how many tenants set their own."""
    defaults = dict(
        owner.execute(
            "SELECT column_name, column_default FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'tenants'"
            " AND column_name LIKE 'retention\\_%'"
        ).fetchall()
    )
    shown = ", ".join(f"{label} {defaults.get(column)} d" for column, label in _RETENTION_COLUMNS)
    others = owner.execute(
        "SELECT count(*) FROM tenants WHERE "
        + " OR ".join(
            f"{column} IS DISTINCT FROM {int(defaults[column])}"
            for column, _ in _RETENTION_COLUMNS
            if defaults.get(column) is not None
        )
    ).fetchone()[0]
    return ok(f"defaults {shown}; {others} tenant(s) with their own periods; applied daily")


def overdue_privacy_requests(owner: psycopg.Connection) -> Finding:
    """Privacy requests received more than 30 days ago and not completed (ids only)."""
    rows = owner.execute(
        "SELECT tenant_id, count(*), min(received_at) FROM privacy_requests"
        " WHERE completed_at IS NULL AND received_at < now() - make_interval(days => %s)"
        " GROUP BY tenant_id ORDER BY 3",
        (PRIVACY_REQUEST_DAYS,),
    ).fetchall()
    if not rows:
        return ok(f"none open for more than {PRIVACY_REQUEST_DAYS} days")
    total = sum(row[1] for row in rows)
    tenants = ", ".join(str(row[0]) for row in rows[:5])
    return fail(
        f"{total} request(s) open for more than {PRIVACY_REQUEST_DAYS} days"
        f" (oldest received {rows[0][2].date()}; tenants {tenants})",
        "start a worker (it sweeps open requests) or run `skeldir privacy list --tenant T`",
    )


def broker_reachable(broker_url: str | None) -> Finding:
    if not broker_url:
        return fail("no broker URL", "set SKELDIR_BROKER_URL or run `skeldir up`")
    timeout = CONNECT_TIMEOUT_SECONDS
    connection = BrokerConnection(
        broker_url,
        connect_timeout=timeout,
        transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout},
    )
    shown = maybe_sanitize_url(broker_url)  # masks a password the URL carries
    try:
        with connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:  # each transport raises its own errors; any means unreachable
        return fail(
            f"{shown} is unreachable ({type(exc).__name__})",
            "start the broker or correct SKELDIR_BROKER_URL",
        )
    return ok(f"{shown} answers")


def api_answers(public_url: str) -> Finding:
    url = f"{public_url.rstrip('/')}/healthz"
    try:
        response = httpx.get(url, timeout=CONNECT_TIMEOUT_SECONDS)
    except httpx.HTTPError:
        # Not running is a state, not a fault: doctor also runs before the first start.
        return Finding(WARN, f"nothing answers at {url}", "start the API if it should run")
    if response.status_code != 200:
        return fail(f"{url} answered {response.status_code}", "see the API log")
    return ok(f"{url} answers")


def _open(stack: ExitStack, opener: Callable[[], AbstractContextManager]):
    """The connection, or None and the first line of why it could not be opened."""
    try:
        return stack.enter_context(opener()), None
    except (psycopg.Error, DatabaseNotConfigured) as exc:
        return None, str(exc).strip().splitlines()[0]


def _guarded(check: Callable[..., Finding], *args: object) -> Finding:
    """The check's finding; a query it could not run fails it (a stale schema, a missing grant)."""
    try:
        return check(*args)
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        return fail(f"could not check: {first_line}", "skeldir migrate, as the owner role")


def _unconnected(role: str, error: str | None) -> Finding | None:
    """What every check that needs `role`'s connection finds when there is none."""
    if error is None:
        return None
    return fail(
        f"not checked: cannot connect as the {role} role ({error})",
        f"correct SKELDIR_{'' if role == 'runtime' else role.upper() + '_'}DATABASE_URL",
    )
