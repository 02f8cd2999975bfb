"""Recompute convergence: every reason to recompute an order is seen by the step that clears it.

A pending mark carries a generation, raised by every re-mark (`mark_orders_pending`, the one
way to mark an order pending without a new order version). The recompute clears a mark only if
both its order version and its generation are those it read, so a re-mark made while a batch
holds the order survives the batch.

Each revenue entry also remembers the currency and day under which the daily revenue report
counted it, so a corrected currency is taken out of the row that counted it.

Revision ID: 20261207_0009
Revises: 20261126_0007
Create Date: 2026-12-07
"""

from alembic import context, op

revision = "20261207_0009"
down_revision = "20261207_0008"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE pending_orders ADD COLUMN generation bigint NOT NULL DEFAULT 1;

-- Where the daily revenue report counted each entry: a corrected currency or day moves the
-- entry's amounts out of the row that counted them. Entries counted so far were counted
-- where they stand.
ALTER TABLE revenue_entries
    ADD COLUMN reported_currency char(3),
    ADD COLUMN reported_day date;
-- A job left running by a worker that died is marked abandoned (see skeldir.attribution.jobs).
ALTER TABLE recompute_jobs DROP CONSTRAINT recompute_jobs_status_check;
ALTER TABLE recompute_jobs ADD CONSTRAINT recompute_jobs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));
CREATE INDEX recompute_jobs_running ON recompute_jobs (tenant_id) WHERE status = 'running';

-- The sweeper's scan and the refresh's oldest-first take.
CREATE INDEX report_dirty_orders_marked ON report_dirty_orders (tenant_id, marked_at);

UPDATE revenue_entries
SET reported_currency = currency, reported_day = (occurred_at AT TIME ZONE 'UTC')::date
WHERE reported_amount_minor IS NOT NULL;
"""

FUNCTIONS = r"""
-- Mark the tenant's orders pending as they stand (late touchpoint, re-attribution, new rate).
-- A mark already there gets a new generation, so a batch that read the old one keeps it.
CREATE OR REPLACE FUNCTION mark_orders_pending(p_tenant uuid, p_orders uuid[])
RETURNS integer
LANGUAGE sql SECURITY INVOKER SET search_path = public, pg_temp AS $$
    WITH marked AS (
        INSERT INTO pending_orders AS p (tenant_id, order_id, order_version)
        SELECT o.tenant_id, o.order_id, o.version FROM orders o
        WHERE o.tenant_id = p_tenant AND o.order_id = ANY(p_orders)
        ON CONFLICT (tenant_id, order_id) DO UPDATE
            SET generation = p.generation + 1, marked_at = now()
        RETURNING 1)
    SELECT count(*)::integer FROM marked
$$;
"""

OWNER_FUNCTIONS = r"""
-- For the sweeper, which serves every tenant: tenant ids only, never their rows. Any kind of
-- work left marked (orders to attribute, orders the reports have not counted) and no fresh
-- chain queued: a lost message, a killed worker or a task that gave up leaves such marks.
CREATE OR REPLACE FUNCTION tenants_needing_recompute(p_grace interval, p_stale interval)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT w.tenant_id
    FROM (SELECT p.tenant_id FROM public.pending_orders p WHERE p.marked_at < now() - p_grace
          UNION
          SELECT d.tenant_id FROM public.report_dirty_orders d
          WHERE d.marked_at < now() - p_grace) AS w
    LEFT JOIN public.chain_state c ON c.tenant_id = w.tenant_id
    WHERE c.queued_at IS NULL OR c.queued_at < now() - p_stale
$$;
"""

JOB_FUNCTIONS = r"""
-- Jobs whose row says running but whose advisory lock (held by a live run on a session of its
-- own; the same two-integer key as skeldir.attribution.jobs.job_lock_key) is free: their worker
-- died. One tenant's, or every tenant's for the sweeper (NULL); a count, never a row.
CREATE OR REPLACE FUNCTION abandon_dead_recompute_jobs(p_tenant uuid)
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH running AS MATERIALIZED (
        SELECT j.tenant_id, j.job_id, replace(j.job_id::text, '-', '') AS hex
        FROM public.recompute_jobs j
        WHERE j.status = 'running' AND (p_tenant IS NULL OR j.tenant_id = p_tenant)
    ), dead AS MATERIALIZED (
        SELECT r.tenant_id, r.job_id FROM running r
        WHERE pg_try_advisory_xact_lock(('x' || substr(r.hex, 1, 8))::bit(32)::integer,
                                        ('x' || substr(r.hex, 9, 8))::bit(32)::integer)
    ), abandoned AS (
        UPDATE public.recompute_jobs j
        SET status = 'abandoned', finished_at = now(),
            error = 'the worker running this job stopped before it finished'
        FROM dead d
        WHERE j.tenant_id = d.tenant_id AND j.job_id = d.job_id AND j.status = 'running'
        RETURNING 1)
    SELECT count(*)::integer FROM abandoned
$$;
"""

RUNTIME_FUNCTIONS = ("mark_orders_pending(uuid, uuid[])", "abandon_dead_recompute_jobs(uuid)")


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    op.execute(FUNCTIONS)
    op.execute(OWNER_FUNCTIONS)
    op.execute(JOB_FUNCTIONS)
    for signature in RUNTIME_FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
