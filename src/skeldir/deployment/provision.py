"""Create the database and its three roles with a superuser connection (embedded and tests).

Deployments with a managed PostgreSQL run the equivalent statements once by hand (see
docs/operations.md); nothing at run time needs a superuser.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@dataclass(frozen=True)
class Roles:
    database: str
    owner: str
    runtime: str
    worker: str
    owner_password: str | None = None
    runtime_password: str | None = None
    worker_password: str | None = None


def provision(admin_url: str, roles: Roles) -> None:
    """Idempotently create the owner, runtime and worker roles and the database."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        _ensure_role(
            conn,
            roles.owner,
            roles.owner_password,
            # The owner maintains every tenant's rows (migrations, operator commands).
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS",
        )
        _ensure_role(
            conn,
            roles.runtime,
            roles.runtime_password,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT",
        )
        # The worker inherits every grant of the runtime role (so a migration grants a table
        # once) and is granted, by name, only the functions that list tenants for its schedules.
        _ensure_role(
            conn,
            roles.worker,
            roles.worker_password,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS INHERIT",
        )
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(roles.runtime), sql.Identifier(roles.worker)
            )
        )
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (roles.database,)
        ).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(roles.database), sql.Identifier(roles.owner)
                )
            )
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(roles.database))
        )
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(roles.database), sql.Identifier(roles.runtime)
            )
        )
    with psycopg.connect(with_database(admin_url, roles.database), autocommit=True) as conn:
        # PostgreSQL 15+ already withholds CREATE on public from PUBLIC; older servers do not.
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(roles.owner)))


def drop(admin_url: str, roles: Roles) -> None:
    """Remove what `provision` created (test clean-up)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(roles.database)
            )
        )
        for role in (roles.worker, roles.runtime, roles.owner):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def role_url(admin_url: str, database: str, user: str, password: str | None = None) -> str:
    """The admin URL's host and port with another user and database, as a libpq URL."""
    params = conninfo_to_dict(admin_url)
    params.update(dbname=database, user=user)
    params.pop("password", None)
    if password:
        params["password"] = password
    return _to_url(params)


def with_database(url: str, database: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = database
    return make_conninfo(**params)


def _to_url(params: dict) -> str:
    user = quote(params.pop("user"), safe="")
    password = params.pop("password", None)
    dbname = quote(params.pop("dbname"), safe="")
    host = params.pop("host", "")
    port = params.pop("port", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    if host.startswith("/"):
        params["host"] = host
        netloc = auth
    else:
        netloc = auth + host + (f":{port}" if port else "")
        port = None
    if port:
        params["port"] = port
    query = urlencode(params)
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


def _ensure_role(conn: psycopg.Connection, name: str, password: str | None, options: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    statement = sql.SQL(f"{verb} ROLE {{}} WITH {options}").format(sql.Identifier(name))
    if password:
        statement = statement + sql.SQL(" PASSWORD {}").format(sql.Literal(password))
    conn.execute(statement)
