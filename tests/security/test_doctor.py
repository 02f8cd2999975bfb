"""`skeldir doctor` on real databases: a healthy deployment passes every check, and each fault,
made on its own in a throwaway database with its own roles, fails exactly the checks it breaks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
import uvicorn
from click.testing import CliRunner
from databases import new_roles
from db_helpers import create_tenant

from skeldir.adapters.app import create_app
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.crypto import new_secret_key
from skeldir.base.db import owner_connection
from skeldir.deployment import migrate
from skeldir.deployment.provision import Roles, drop, provision, role_url, with_database
from skeldir.embedded.redis import EmbeddedRedis

CHECKS = [
    "runtime role attributes",
    "runtime role owns nothing",
    "runtime role creates nothing",
    "owner role",
    "worker role",
    "tenant listing functions",
    "row-level security",
    "security definer functions",
    "migrations",
    "secret key",
    "retention",
    "privacy requests",
    "broker",
    "api",
]


def free_port() -> int:
    for port in range(61000 + os.getpid() % 2000, 64000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port above 61000")


@dataclass
class Doctor:
    exit_code: int
    output: str

    @property
    def results(self) -> dict[str, dict]:
        return {check["name"]: check for check in json.loads(self.output)["checks"]}

    @property
    def failing(self) -> set[str]:
        return {name for name, check in self.results.items() if check["status"] == "fail"}


def run_doctor(settings: Settings, *args: str) -> Doctor:
    env = {
        "SKELDIR_OWNER_DATABASE_URL": settings.owner_database_url,
        "SKELDIR_DATABASE_URL": settings.database_url,
        "SKELDIR_WORKER_DATABASE_URL": settings.worker_database_url,
        "SKELDIR_SECRET_KEY": settings.secret_key,
        "SKELDIR_BROKER_URL": settings.broker_url,
        "SKELDIR_PUBLIC_URL": settings.public_url,
    }
    result = CliRunner().invoke(main, ["--data-dir", str(settings.data_dir), "doctor", *args],
                                env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return Doctor(result.exit_code, result.output)


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A real broker: the one CI gives, else an embedded Redis for this module."""
    given = os.environ.get("SKELDIR_TEST_BROKER_URL")
    if given:
        yield given
        return
    # Under /tmp and traversable: as root, Redis runs as a service user who must reach it.
    workspace = Path(tempfile.mkdtemp(prefix="skt-doctor-"))
    workspace.chmod(0o711)
    server = EmbeddedRedis(workspace / "data")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(workspace, ignore_errors=True)


@pytest.fixture
def running_api(database: Settings, broker_url: str) -> Iterator[str]:
    """The API served by uvicorn in a thread; yields its URL."""
    port = free_port()
    settings = replace(database, broker_url=broker_url)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="doctor-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass(frozen=True)
class Throwaway:
    settings: Settings
    roles: Roles
    admin_url: str

    def as_admin(self, statement: str) -> None:
        with psycopg.connect(with_database(self.admin_url, self.roles.database),
                             autocommit=True) as conn:
            conn.execute(statement)

    def as_owner(self, statement: str) -> None:
        with owner_connection(self.settings, autocommit=True) as conn:
            conn.execute(statement)


@pytest.fixture
def throwaway(admin_url: str) -> Iterator[Throwaway]:
    """A migrated database with its own roles and one tenant with a source, dropped after."""
    roles = new_roles()
    provision(admin_url, roles)
    data_dir = Path(tempfile.mkdtemp(prefix="skt-doctor-data-"))
    settings = Settings(
        data_dir=data_dir,
        owner_database_url=role_url(admin_url, roles.database, roles.owner),
        database_url=role_url(admin_url, roles.database, roles.runtime),
        worker_database_url=role_url(admin_url, roles.database, roles.worker),
        secret_key=new_secret_key(),
        broker_url="memory://",
        public_url=f"http://127.0.0.1:{free_port()}",
    )
    try:
        migrate.upgrade(settings)
        create_tenant(settings)
        yield Throwaway(settings, roles, admin_url)
    finally:
        drop(admin_url, roles)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_healthy_deployment_passes_every_check(database: Settings, broker_url: str,
                                                 running_api: str) -> None:
    create_tenant(database)  # so the secret key has a stored secret to decrypt
    settings = replace(database, broker_url=broker_url, public_url=running_api)

    report = run_doctor(settings, "--json")
    assert report.exit_code == 0, report.output
    assert list(report.results) == CHECKS
    assert {name: check["status"] for name, check in report.results.items()} == dict.fromkeys(
        CHECKS, "ok")
    assert "decrypts the stored secrets" in report.results["secret key"]["detail"]

    lines = run_doctor(settings).output.splitlines()
    assert len(lines) == len(CHECKS), lines
    assert all(line.startswith("ok") for line in lines), lines
    # Neither the secret key nor a password-bearing URL is ever printed.
    assert settings.secret_key not in report.output + "\n".join(lines)


def test_an_api_that_is_not_running_warns_without_failing(database: Settings) -> None:
    report = run_doctor(replace(database, broker_url="memory://",
                                public_url=f"http://127.0.0.1:{free_port()}"), "--json")
    assert report.exit_code == 0, report.output
    assert report.results["api"]["status"] == "warn"
    assert report.failing == set()


def test_the_throwaway_deployment_is_healthy_before_it_is_broken(throwaway: Throwaway) -> None:
    report = run_doctor(throwaway.settings, "--json")
    assert report.exit_code == 0 and report.failing == set(), report.output


@pytest.mark.parametrize("statement", [
    "ALTER TABLE orders NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE orders DISABLE ROW LEVEL SECURITY",
    "CREATE POLICY everyone ON orders USING (true)",
    "DROP POLICY tenant_isolation ON orders",
])
def test_a_table_whose_row_level_security_is_weakened_fails_by_name(throwaway: Throwaway,
                                                                    statement: str) -> None:
    throwaway.as_owner(statement)
    report = run_doctor(throwaway.settings, "--json")
    assert report.exit_code == 1
    assert report.failing == {"row-level security"}, report.output
    detail = report.results["row-level security"]["detail"]
    assert detail.startswith("orders: ") and ";" not in detail, detail
    plain = run_doctor(throwaway.settings).output
    assert any(line.startswith("FAIL  row-level security: orders") and "fix:" in line
               for line in plain.splitlines()), plain


def test_a_new_tenant_table_without_row_level_security_fails_by_name(throwaway: Throwaway) -> None:
    throwaway.as_owner("CREATE TABLE visits_by_hour (tenant_id uuid NOT NULL, visits integer)")
    report = run_doctor(throwaway.settings, "--json")
    assert report.failing == {"row-level security"}, report.output
    assert "visits_by_hour: row-level security is disabled" in (
        report.results["row-level security"]["detail"])


def test_a_view_that_reads_as_its_owner_fails_by_name(throwaway: Throwaway) -> None:
    throwaway.as_owner("ALTER VIEW allocation_summary SET (security_invoker = false)")
    report = run_doctor(throwaway.settings, "--json")
    assert report.failing == {"row-level security"}, report.output
    assert "allocation_summary" in report.results["row-level security"]["detail"]


@pytest.mark.parametrize("attribute, also_failing", [
    ("BYPASSRLS", set()),
    # A superuser has every privilege and every role's membership as well.
    ("SUPERUSER", {"runtime role creates nothing", "owner role", "tenant listing functions"}),
])
def test_a_runtime_role_that_escapes_row_level_security_fails(throwaway: Throwaway, attribute: str,
                                                              also_failing: set[str]) -> None:
    throwaway.as_admin(f'ALTER ROLE "{throwaway.roles.runtime}" {attribute}')
    report = run_doctor(throwaway.settings, "--json")
    assert report.exit_code == 1
    assert report.failing == {"runtime role attributes"} | also_failing, report.output
    assert attribute in report.results["runtime role attributes"]["detail"]


def test_a_runtime_role_in_the_owner_role_fails(throwaway: Throwaway) -> None:
    throwaway.as_admin(f'GRANT "{throwaway.roles.owner}" TO "{throwaway.roles.runtime}"')
    report = run_doctor(throwaway.settings, "--json")
    assert report.failing == {"runtime role attributes", "owner role"}, report.output
    assert f"a member of {throwaway.roles.owner}" in report.results["owner role"]["detail"]


def test_one_role_for_both_urls_fails(throwaway: Throwaway) -> None:
    settings = replace(throwaway.settings, database_url=throwaway.settings.owner_database_url)
    report = run_doctor(settings, "--json")
    assert "owner role" in report.failing
    assert "is the owner role" in report.results["owner role"]["detail"]


def test_a_runtime_role_that_owns_a_table_fails_by_name(throwaway: Throwaway) -> None:
    throwaway.as_admin(f'ALTER TABLE fx_rates OWNER TO "{throwaway.roles.runtime}"')
    report = run_doctor(throwaway.settings, "--json")
    assert report.failing == {"runtime role owns nothing"}, report.output
    assert "table fx_rates" in report.results["runtime role owns nothing"]["detail"]


def test_temporary_tables_of_runtime_sessions_are_not_owned_objects(throwaway: Throwaway) -> None:
    # What the recompute leaves on each pooled connection of a live worker.
    with psycopg.connect(throwaway.settings.database_url, autocommit=True) as session:
        session.execute("CREATE TEMPORARY TABLE attribution_batch (idx integer)"
                        " ON COMMIT DELETE ROWS")
        report = run_doctor(throwaway.settings, "--json")
    assert report.failing == set(), report.output


def test_a_runtime_role_that_can_create_in_public_fails(throwaway: Throwaway) -> None:
    throwaway.as_owner(f'GRANT CREATE ON SCHEMA public TO "{throwaway.roles.runtime}"')
    report = run_doctor(throwaway.settings, "--json")
    assert report.failing == {"runtime role creates nothing"}, report.output


def test_a_security_definer_function_without_a_search_path_fails_by_name(
        throwaway: Throwaway) -> None:
    throwaway.as_owner("CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql"
                       " SECURITY DEFINER AS $$ SELECT count(*) FROM public.tenants $$")
    report = run_doctor(throwaway.settings, "--json")
    assert report.failing == {"security definer functions"}, report.output
    assert "tenant_count()" in report.results["security definer functions"]["detail"]


@pytest.mark.parametrize("statement, reason", [
    ("UPDATE alembic_version SET version_num = '20261126_0005'", "behind head"),
    ("DELETE FROM alembic_version", "records no revision"),
    ("UPDATE alembic_version SET version_num = '20991231_0099'", "does not know"),
    ("DROP TABLE alembic_version", "never migrated"),
])
def test_a_database_not_at_the_migrations_head_fails(throwaway: Throwaway, statement: str,
                                                     reason: str) -> None:
    throwaway.as_owner(statement)
    report = run_doctor(throwaway.settings, "--json")
    assert report.exit_code == 1
    assert report.failing == {"migrations"}, report.output
    assert reason in report.results["migrations"]["detail"]


def test_an_unreachable_broker_fails(throwaway: Throwaway) -> None:
    settings = replace(throwaway.settings,
                       broker_url=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    report = run_doctor(settings, "--json")
    assert time.monotonic() - started < 30
    assert report.exit_code == 1
    assert report.failing == {"broker"}, report.output
    assert "unreachable" in report.results["broker"]["detail"]
    assert "hunter2" not in report.output


def test_a_secret_key_that_does_not_decrypt_the_stored_secrets_fails(throwaway: Throwaway) -> None:
    report = run_doctor(replace(throwaway.settings, secret_key=new_secret_key()), "--json")
    assert report.failing == {"secret key"}, report.output
    assert "does not decrypt" in report.results["secret key"]["detail"]


def test_an_unreachable_runtime_role_fails_every_check_that_needs_it(throwaway: Throwaway) -> None:
    settings = replace(throwaway.settings, database_url=role_url(
        throwaway.admin_url, throwaway.roles.database, f"{throwaway.roles.runtime}_missing"))
    report = run_doctor(settings, "--json")
    assert report.failing == {"runtime role attributes", "runtime role owns nothing",
                              "runtime role creates nothing", "owner role", "worker role",
                              "tenant listing functions"}, report.output
    assert report.results["owner role"]["detail"].startswith("not checked")


@pytest.mark.parametrize("grantee", ["runtime", "PUBLIC"])
def test_a_runtime_role_that_may_list_every_tenant_fails(throwaway: Throwaway,
                                                         grantee: str) -> None:
    role = f'"{throwaway.roles.runtime}"' if grantee == "runtime" else "PUBLIC"
    throwaway.as_owner("GRANT EXECUTE ON FUNCTION"
                       f" tenants_with_touchpoints(timestamp with time zone) TO {role}")
    report = run_doctor(throwaway.settings, "--json")
    assert report.exit_code == 1
    assert report.failing == {"tenant listing functions"}, report.output
    check = report.results["tenant listing functions"]
    assert "may list every tenant: tenants_with_touchpoints" in check["detail"]
    assert check["fix"].startswith("REVOKE EXECUTE ON FUNCTION tenants_with_touchpoints")


def test_a_worker_role_denied_its_functions_fails(throwaway: Throwaway) -> None:
    throwaway.as_owner("REVOKE EXECUTE ON FUNCTION tenants_needing_recompute(interval, interval)"
                       f' FROM "{throwaway.roles.worker}"')
    report = run_doctor(throwaway.settings, "--json")
    assert report.failing == {"tenant listing functions"}, report.output
    assert "may not execute tenants_needing_recompute" in (
        report.results["tenant listing functions"]["detail"])


def test_a_worker_that_connects_as_the_runtime_role_fails(throwaway: Throwaway) -> None:
    settings = replace(throwaway.settings, worker_database_url=throwaway.settings.database_url)
    report = run_doctor(settings, "--json")
    assert report.failing == {"worker role", "tenant listing functions"}, report.output
    assert "connects as the runtime role" in report.results["worker role"]["detail"]


@pytest.mark.parametrize("change, expected", [
    ('ALTER ROLE "{worker}" BYPASSRLS', "BYPASSRLS"),
    ('GRANT "{owner}" TO "{worker}"', "a member of {owner}"),
    # Let in by a grant of its own, it lacks every table grant of the runtime role.
    ('GRANT CONNECT ON DATABASE "{database}" TO "{worker}"; REVOKE "{runtime}" FROM "{worker}"',
     "without the privileges of {runtime}"),
])
def test_a_worker_role_that_escapes_or_lacks_its_bounds_fails(throwaway: Throwaway, change: str,
                                                              expected: str) -> None:
    names = {"worker": throwaway.roles.worker, "owner": throwaway.roles.owner,
             "runtime": throwaway.roles.runtime, "database": throwaway.roles.database}
    throwaway.as_admin(change.format(**names))
    report = run_doctor(throwaway.settings, "--json")
    assert "worker role" in report.failing, report.output
    assert expected.format(**names) in report.results["worker role"]["detail"]


def test_a_missing_worker_role_fails_the_checks_that_need_it(throwaway: Throwaway) -> None:
    settings = replace(throwaway.settings, worker_database_url=role_url(
        throwaway.admin_url, throwaway.roles.database, f"{throwaway.roles.worker}_missing"))
    report = run_doctor(settings, "--json")
    assert report.failing == {"worker role", "tenant listing functions"}, report.output
    assert "cannot connect as the worker role" in report.results["worker role"]["detail"]
    assert "SKELDIR_WORKER_DATABASE_URL" in report.results["worker role"]["fix"]


def test_a_database_host_that_never_answers_fails_within_the_connect_timeout(
        database: Settings) -> None:
    # A real listening socket that completes TCP handshakes (the kernel's backlog) and never
    # says a word, as a firewall or a hung server would.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/nothing"
        env = {"SKELDIR_OWNER_DATABASE_URL": url, "SKELDIR_DATABASE_URL": url,
               "SKELDIR_WORKER_DATABASE_URL": url, "SKELDIR_BROKER_URL": "memory://",
               "SKELDIR_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
               "SKELDIR_SECRET_KEY": database.secret_key,
               "SKELDIR_DB_CONNECT_TIMEOUT_SECONDS": "2"}
        finished: list[Doctor] = []

        def doctor() -> None:
            result = CliRunner().invoke(
                main, ["--data-dir", str(database.data_dir), "doctor", "--json"], env=env)
            finished.append(Doctor(result.exit_code, result.output))

        runner = threading.Thread(target=doctor, daemon=True)
        runner.start()
        runner.join(timeout=30)
        assert not runner.is_alive(), "doctor still waits on a host that never answers after 30 s"
    report = finished[0]
    assert report.exit_code == 1
    assert "cannot connect as the owner role" in report.results["row-level security"]["detail"]
    assert "cannot connect as the runtime role" in (
        report.results["runtime role attributes"]["detail"])


def test_doctor_reports_retention_and_privacy_requests_left_open(throwaway: Throwaway) -> None:
    report = run_doctor(throwaway.settings, "--json")
    assert report.results["retention"]["status"] == "ok"
    assert "touchpoints 400 d" in report.results["retention"]["detail"]
    assert report.results["privacy requests"]["status"] == "ok"
    with owner_connection(throwaway.settings) as conn:
        tenant_id = conn.execute("SELECT tenant_id FROM tenants LIMIT 1").fetchone()[0]
        conn.execute("UPDATE tenants SET retention_touchpoint_days = 30")
        conn.execute("INSERT INTO privacy_requests (tenant_id, request_id, kind, origin,"
                     " received_at) VALUES"
                     " (%s, gen_random_uuid(), 'erasure', 'api', now() - interval '29 days'),"
                     " (%s, gen_random_uuid(), 'erasure', 'api', now() - interval '31 days')",
                     (tenant_id, tenant_id))
    report = run_doctor(throwaway.settings, "--json")
    assert "1 tenant(s) with their own periods" in report.results["retention"]["detail"]
    assert report.failing == {"privacy requests"}, report.output
    assert "1 request(s) open" in report.results["privacy requests"]["detail"]
    assert str(tenant_id) in report.results["privacy requests"]["detail"]
