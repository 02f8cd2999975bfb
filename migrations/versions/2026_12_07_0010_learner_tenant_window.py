"""The learner's tenant list no longer reaches back as far as its caller asks.

`tenants_with_touchpoints(p_since)` runs without a tenant context for the scheduled learner, and
the runtime role may call it: with `p_since => '-infinity'` it listed every tenant that ever had
a touchpoint, which is nearly every tenant id, and a tenant id is all the runtime role needs to
enter that tenant's context. It now answers only for tenants with touchpoints received (server
time, not the browser's `occurred_at`) in the learner's own window of 30 days, whatever the caller
passes; `p_since` can only narrow it.

Revision ID: 20261207_0010
Revises: 20261126_0007
Create Date: 2026-12-07
"""

from alembic import op

revision = "20261207_0010"
down_revision = "20261126_0007"
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


def upgrade() -> None:
    op.execute(LEARNER_FUNCTION)


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
