"""sql/functions/ against a database migrated to head: each file, loaded as a migration loads
it, defines its functions exactly as the migrations left them, and every project function has
its file."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, pool

from skeldir.base.config import Settings
from skeldir.deployment import migrate

SQL_FUNCTIONS_DIR = migrate.MIGRATIONS_DIR.parent / "sql" / "functions"
FILES = sorted(SQL_FUNCTIONS_DIR.glob("*.sql"))

# The project's functions: those in public that no extension brought.
PROJECT_FUNCTIONS = """
    SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                        AND d.deptype = 'e')
"""
# A CREATE OR REPLACE rewrites its pg_proc row even when nothing changes, so the rows this
# transaction wrote are the functions a file defines.
WRITTEN_HERE = "SELECT p.proname FROM pg_proc p WHERE p.xmin = pg_current_xact_id()::xid"


@pytest.fixture
def owner(database: Settings) -> Iterator[Connection]:
    """The owner's connection as a migration has it; whatever the test does is rolled back."""
    engine = create_engine(migrate.sqlalchemy_url(database.owner_database_url),
                           poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
            connection.rollback()
    finally:
        engine.dispose()


@pytest.fixture
def load(database: Settings) -> Callable[[object, str], None]:
    # Reading the migrations puts their folder on sys.path, as `skeldir migrate` does.
    ScriptDirectory.from_config(migrate.alembic_config(database))
    return importlib.import_module("sql_functions").load


def project_functions(connection: Connection) -> dict[int, tuple[str, str, str]]:
    return {oid: (name, arguments, definition)
            for oid, name, arguments, definition in connection.exec_driver_sql(PROJECT_FUNCTIONS)}


def test_every_project_function_has_its_file_and_every_file_its_function(owner: Connection):
    in_database = {name for name, _, _ in project_functions(owner).values()}
    assert {path.stem for path in FILES} == in_database


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_the_file_defines_the_function_as_the_database_has_it(owner: Connection, load, path: Path):
    # PostgreSQL normalises the file's text; what differs from the head definition (body,
    # options, a new overload) shows as a change.
    before = project_functions(owner)
    load(SimpleNamespace(get_bind=lambda: owner), path.stem)
    written = [name for (name,) in owner.exec_driver_sql(WRITTEN_HERE)]
    after = project_functions(owner)

    overloads = [oid for oid, (name, _, _) in before.items() if name == path.stem]
    assert overloads, f"the migrations define no function {path.stem}"
    assert written and set(written) == {path.stem}, f"{path.name} defines {written}"
    assert len(written) == len(overloads), f"{path.name} misses an overload of {path.stem}"
    assert after.keys() == before.keys(), f"{path.name} creates a function the migrations do not"
    for oid in overloads:
        assert after[oid] == before[oid], f"{path.name} differs from the migrated definition"


def test_load_leaves_function_bodies_checked_after_it(owner: Connection, load):
    load(SimpleNamespace(get_bind=lambda: owner), "credit_minor")
    assert owner.exec_driver_sql("SHOW check_function_bodies").scalar() == "on"
