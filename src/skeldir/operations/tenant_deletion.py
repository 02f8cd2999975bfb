"""Delete a tenant and every row it owns, as the owner role, table by table in bounded batches.

The tables are read from the catalog (every table of the schema with a `tenant_id` column), so a
table a later migration adds is covered without a change here. Tables that reference others go
first (foreign keys read from the catalog too), and `tenants` itself last.

A deletion is resumable: the first step marks the tenant `deleting_at`, revokes its API keys and
disables its webhook sources in one transaction, so the API and the webhook edge refuse it from
then on; each batch then commits on its own. Run again after a crash, it finds the mark and
deletes what is left. Rows written meanwhile by a task that was already running (a recompute's
job row) are caught by passes over the tables until a pass finds none.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from skeldir.operations.tenants import AdminError

DEFAULT_BATCH_SIZE = 5000
MAX_PASSES = 5

_TENANT_TABLES_SQL = """
SELECT c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = current_schema()
ORDER BY c.relname
"""

# (referencing table, referenced table) for every foreign key between tables of the schema.
_FOREIGN_KEYS_SQL = """
SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
FROM pg_constraint c
JOIN pg_class r ON r.oid = c.conrelid
JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE c.contype = 'f' AND n.nspname = current_schema() AND c.conrelid <> c.confrelid
"""


@dataclass
class DeletionSummary:
    tenant_id: uuid.UUID
    # table -> rows deleted by this run
    deleted: dict[str, int] = field(default_factory=dict)
    resumed: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def tenant_tables(conn: psycopg.Connection) -> list[str]:
    """Every table with a tenant_id column, ordered so that a table comes before any table it
    references (children first); `tenants` is last."""
    tables = [row[0] for row in conn.execute(_TENANT_TABLES_SQL).fetchall()]
    references: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in conn.execute(_FOREIGN_KEYS_SQL).fetchall():
        if child in references and parent in references:
            references[child].add(parent)
    return _children_first(references)


def _children_first(references: dict[str, set[str]]) -> list[str]:
    """A table before every table it references; ties by name. References form no cycle here
    (a cycle would fall back to name order for its members)."""
    referenced_by: dict[str, set[str]] = {table: set() for table in references}
    for child, parents in references.items():
        for parent in parents:
            referenced_by[parent].add(child)
    ordered: list[str] = []
    placed: set[str] = set()
    remaining = sorted(references)
    while remaining:
        ready = [t for t in remaining if referenced_by[t] <= placed] or remaining[:1]
        table = ready[0]
        ordered.append(table)
        placed.add(table)
        remaining.remove(table)
    if "tenants" in ordered:
        ordered.remove("tenants")
        ordered.append("tenants")
    return ordered


def remaining_rows(conn: psycopg.Connection, tenant_id: uuid.UUID) -> dict[str, int]:
    """Per tenant table, the rows the tenant still has there."""
    counts = {}
    for table in tenant_tables(conn):
        query = sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(
            sql.Identifier(table)
        )
        counts[table] = conn.execute(query, (tenant_id,)).fetchone()[0]
    conn.commit()
    return counts


def start_deletion(conn: psycopg.Connection, tenant_id: uuid.UUID) -> bool:
    """Mark the tenant as being deleted and shut its doors: keys revoked, sources disabled.
    True when it was already marked (a deletion resumed)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT deleting_at FROM tenants WHERE tenant_id = %s FOR UPDATE", (tenant_id,)
        ).fetchone()
        if row is None:
            return True
        conn.execute(
            "UPDATE tenants SET deleting_at = coalesce(deleting_at, now()) WHERE tenant_id = %s",
            (tenant_id,),
        )
        conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = %s",
            (tenant_id,),
        )
        conn.execute(
            "UPDATE webhook_sources SET disabled_at = coalesce(disabled_at, now())"
            " WHERE tenant_id = %s",
            (tenant_id,),
        )
    return row[0] is not None


def delete_tenant(
    conn: psycopg.Connection,
    tenant_id: uuid.UUID,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> DeletionSummary:
    """Delete every row of `tenant_id` from every tenant table, `batch_size` rows per
    transaction; `on_batch(rows)` after each batch (a progress bar). `conn` is in autocommit
    mode, so each batch is its own transaction."""
    if batch_size < 1:
        raise AdminError("the batch size is at least 1")
    existed = conn.execute(
        "SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant_id,)
    ).fetchone() is not None
    conn.commit()
    if not existed and not any(remaining_rows(conn, tenant_id).values()):
        raise AdminError(f"no tenant {tenant_id}")
    summary = DeletionSummary(tenant_id, resumed=start_deletion(conn, tenant_id))
    for _ in range(MAX_PASSES):
        deleted_this_pass = 0
        for table in tenant_tables(conn):
            rows = _delete_table(conn, table, tenant_id, batch_size, on_batch)
            summary.deleted[table] = summary.deleted.get(table, 0) + rows
            deleted_this_pass += rows
        if not deleted_this_pass:
            return summary
    left = {table: n for table, n in remaining_rows(conn, tenant_id).items() if n}
    if left:
        raise RuntimeError(f"rows of the tenant are still being written: {left}")
    return summary


def _delete_table(
    conn: psycopg.Connection,
    table: str,
    tenant_id: uuid.UUID,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
) -> int:
    # ctid batches: every tenant table has tenant_id leading an index, so the inner select
    # reads one tenant's rows only, and no table needs a known key.
    statement = sql.SQL(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM {table} WHERE tenant_id = %s LIMIT %s))"
    ).format(table=sql.Identifier(table))
    total = 0
    while True:
        with conn.transaction():
            rows = conn.execute(statement, (tenant_id, batch_size)).rowcount
        if rows <= 0:
            return total
        total += rows
        if on_batch:
            on_batch(rows)
