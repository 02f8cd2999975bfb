"""What the catalog says about distributing the schema by tenant_id (Citus): every key of a
tenant table leads with tenant_id, and every reference between tenant tables matches tenant_id
with tenant_id, so no constraint spans two tenants."""

from __future__ import annotations

import psycopg

# Unique constraints and unique indexes (primary keys included) of tables with a tenant_id.
_KEYS_SQL = """
SELECT c.relname AS table_name, i.relname AS key_name,
       (SELECT array_agg(a.attname ORDER BY k.ordinality)
          FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ordinality)
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
         WHERE k.ordinality <= x.indnkeyatts) AS columns
FROM pg_index x
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND x.indisunique
  AND EXISTS (SELECT 1 FROM pg_attribute t
               WHERE t.attrelid = c.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped)
ORDER BY 1, 2
"""

# Foreign keys between two tables that both have a tenant_id.
_REFERENCES_SQL = """
SELECT f.conname AS name, c.relname AS table_name, r.relname AS referenced,
       (SELECT array_agg(a.attname ORDER BY k.ordinality) FROM unnest(f.conkey)
          WITH ORDINALITY AS k(attnum, ordinality)
          JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum) AS columns,
       (SELECT array_agg(a.attname ORDER BY k.ordinality) FROM unnest(f.confkey)
          WITH ORDINALITY AS k(attnum, ordinality)
          JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum) AS referenced_columns
FROM pg_constraint f
JOIN pg_class c ON c.oid = f.conrelid
JOIN pg_class r ON r.oid = f.confrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE f.contype = 'f' AND n.nspname = 'public'
  AND EXISTS (SELECT 1 FROM pg_attribute t
               WHERE t.attrelid = f.conrelid AND t.attname = 'tenant_id' AND NOT t.attisdropped)
  AND EXISTS (SELECT 1 FROM pg_attribute t
               WHERE t.attrelid = f.confrelid AND t.attname = 'tenant_id' AND NOT t.attisdropped)
ORDER BY 1
"""


def undistributable(conn: psycopg.Connection) -> list[str]:
    """What would stop distributing the schema by tenant_id, one line per key or reference."""
    problems = []
    for table, key, columns in conn.execute(_KEYS_SQL).fetchall():
        if not columns or columns[0] != "tenant_id":
            problems.append(f"{table}: key {key} {columns} does not lead with tenant_id")
    for name, table, referenced, columns, referenced_columns in conn.execute(
        _REFERENCES_SQL
    ).fetchall():
        pairs = dict(zip(columns, referenced_columns, strict=True))
        if pairs.get("tenant_id") != "tenant_id":
            problems.append(
                f"{table}: reference {name} to {referenced} does not match tenant_id with tenant_id"
            )
    return problems
