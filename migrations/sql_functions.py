"""Migrations load a SQL function from its file in sql/functions/, which holds its current text."""

from __future__ import annotations

from pathlib import Path

SQL_FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "sql" / "functions"


def load(op, name: str) -> None:
    """Run sql/functions/<name>.sql (CREATE OR REPLACE of every overload of `name`) as written."""
    # A migration replayed on an empty database loads the file as it is now, which may name
    # tables or columns that only later migrations create: like pg_dump, leave the bodies to be
    # checked when they run.
    connection = op.get_bind()
    connection.exec_driver_sql("SET LOCAL check_function_bodies = off")
    # no_parameters: the text reaches PostgreSQL verbatim ('%' and ':name' are not placeholders).
    connection.exec_driver_sql(
        (SQL_FUNCTIONS_DIR / f"{name}.sql").read_text(),
        execution_options={"no_parameters": True},
    )
    connection.exec_driver_sql("RESET check_function_bodies")
