"""sql/functions/ against a database migrated to head: each file defines its functions exactly
as the migrations left them, and every project function has its file."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from skeldir.base.config import Settings
from skeldir.base.db import owner_connection

SQL_FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "functions"
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


def project_functions(conn: psycopg.Connection) -> dict[int, tuple[str, str, str]]:
    return {oid: (name, arguments, definition)
            for oid, name, arguments, definition in conn.execute(PROJECT_FUNCTIONS)}


def test_every_project_function_has_its_file_and_every_file_its_function(database: Settings):
    with owner_connection(database) as conn:
        in_database = {name for name, _, _ in project_functions(conn).values()}
    assert {path.stem for path in FILES} == in_database


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_the_file_defines_the_function_as_the_database_has_it(database: Settings, path: Path):
    # The file runs in a transaction that is rolled back: PostgreSQL normalises its text, and
    # what differs from the head definition (body, options, a new overload) shows as a change.
    with owner_connection(database) as conn:
        before = project_functions(conn)
        try:
            conn.execute(path.read_text())
            written = [name for (name,) in conn.execute(WRITTEN_HERE)]
            after = project_functions(conn)
        finally:
            conn.rollback()

    overloads = [oid for oid, (name, _, _) in before.items() if name == path.stem]
    assert overloads, f"the migrations define no function {path.stem}"
    assert written and set(written) == {path.stem}, f"{path.name} defines {written}"
    assert len(written) == len(overloads), f"{path.name} misses an overload of {path.stem}"
    assert after.keys() == before.keys(), f"{path.name} creates a function the migrations do not"
    for oid in overloads:
        assert after[oid] == before[oid], f"{path.name} differs from the migrated definition"
