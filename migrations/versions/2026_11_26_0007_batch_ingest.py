"""Many ingests in one round trip and one commit: the API's group commit.

`ingest_events` takes the arguments of several `ingest_event` calls as parallel arrays and makes
those calls in order, in the caller's transaction. Each call sets its own event's tenant context
before it writes, so row-level security checks every row against the tenant it belongs to, and
dedupe, ledger rules, pending marks and `needs_chain` are exactly those of `ingest_event` (a
second delivery with the same key in one batch finds the first and is a duplicate). The three
documents of each event come as JSON text: an array of jsonb whose elements are themselves
arrays (the entries) would be read as a two-dimensional array.

Revision ID: 20261126_0007
Revises: 20261126_0006
Create Date: 2026-11-26
"""

from alembic import context, op

revision = "20261126_0007"
down_revision = "20261126_0006"
branch_labels = None
depends_on = None

FUNCTIONS = r"""
CREATE FUNCTION ingest_events(
    p_tenants uuid[], p_sources uuid[], p_providers text[], p_topics text[], p_dedupes text[],
    p_payloads text[], p_orders text[], p_entries text[], p_stale interval
)
RETURNS TABLE (ordinal integer, status text, event_id uuid, order_id uuid, needs_chain boolean)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_tenants), 0) LOOP
        RETURN QUERY SELECT i, r.status, r.event_id, r.order_id, r.needs_chain
            FROM ingest_event(p_tenants[i], p_sources[i], p_providers[i], p_topics[i],
                              p_dedupes[i], p_payloads[i]::jsonb, p_orders[i]::jsonb,
                              p_entries[i]::jsonb, p_stale) AS r;
    END LOOP;
END
$$;
"""

SIGNATURE = (
    "ingest_events(uuid[], uuid[], text[], text[], text[], text[], text[], text[], interval)"
)


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(FUNCTIONS)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {SIGNATURE} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
