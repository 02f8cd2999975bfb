"""The learner's tenant list no longer reaches back as far as its caller asks; every change to
a credential notifies the API processes.

`tenants_with_touchpoints(p_since)` runs without a tenant context for the scheduled learner, and
the runtime role may call it: with `p_since => '-infinity'` it listed every tenant that ever had
a touchpoint, which is nearly every tenant id, and a tenant id is all the runtime role needs to
enter that tenant's context. It now answers only for tenants with touchpoints received (server
time, not the browser's `occurred_at`) in the learner's own window of 30 days, whatever the caller
passes; `p_since` can only narrow it.

The API caches what a webhook credential resolves to and clears that cache on a notification on
`skeldir_sources_changed`. Operator commands sent it by hand, and revoking a key sent none, so
a revoked webhook key kept working until the cache expired. A statement trigger on every table a
resolution reads now sends it, in the changing transaction (delivered at commit), whoever writes.

Revision ID: 20261207_0010
Revises: 20261126_0007
Create Date: 2026-12-07
"""

from alembic import op

revision = "20261207_0010"
down_revision = "20261207_0009"
branch_labels = None
depends_on = None

LEARNER_FUNCTION = r"""
CREATE OR REPLACE FUNCTION tenants_with_touchpoints(p_since timestamptz)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.tenant_id FROM public.tenants t
    WHERE EXISTS (SELECT 1 FROM public.touchpoints p
                  WHERE p.tenant_id = t.tenant_id
                    AND p.occurred_at >= greatest(p_since, now() - interval '30 days')
                    AND p.received_at >= now() - interval '30 days')
$$;
"""

CREDENTIALS_CHANGED = r"""
CREATE OR REPLACE FUNCTION notify_credentials_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('skeldir_sources_changed', '');
    RETURN NULL;
END
$$;
"""

CREDENTIAL_TABLES = ("api_keys", "webhook_sources", "webhook_source_secrets", "tenants")


def upgrade() -> None:
    op.execute(LEARNER_FUNCTION)
    op.execute(CREDENTIALS_CHANGED)
    for table in CREDENTIAL_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_credentials_changed ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_notify_credentials_changed"
            f" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION notify_credentials_changed()"
        )


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
