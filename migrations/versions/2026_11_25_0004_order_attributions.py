"""One attribution row per order for every model, stored channels on touchpoints, and the
daily channel report kept by the recompute itself.

A row per (order, model) cost a recompute eight writes per order; one row per order, its
credits packed as int64s, costs one. The rows are written through COPY into a temporary table
and one INSERT ... SELECT per batch (COPY into a table under row-level security is refused).
What the recompute used to stamp onto the order (the visitor it was stitched to, the exchange
rate) lives on that row too, so a recompute no longer rewrites orders. `allocation_summary`
becomes a view over the rows: exact by construction and never stale.

Every order is marked pending, so the first recompute after this migration rebuilds the rows.

Revision ID: 20261125_0004
Revises: 20261125_0003
Create Date: 2026-11-25
"""

from alembic import context, op

revision = "20261125_0004"
down_revision = "20261125_0003"
branch_labels = None
depends_on = None

SCHEMA = r"""
-- The channel each touchpoint was classified into, and the rule-set version that did it
-- (0: the default rules). A recompute reclassifies a touchpoint whose version is not current.
ALTER TABLE touchpoints ADD COLUMN channel text, ADD COLUMN rules_version integer;

DROP TABLE attribution_allocations;
DROP TABLE allocation_summary;
DROP INDEX orders_stitched_visitor;
ALTER TABLE orders
    DROP COLUMN stitched_visitor_id,
    DROP COLUMN reporting_currency,
    DROP COLUMN fx_rate,
    DROP COLUMN fx_factor;

CREATE TABLE order_attributions (
    tenant_id uuid NOT NULL,
    order_id uuid NOT NULL,
    -- The order's UTC day and currency, as the reports group it.
    day date NOT NULL,
    currency char(3) NOT NULL,
    -- What the credits split: the order's net revenue (sales less refunds and cancellations)
    -- and its sales alone, in the order's minor units.
    revenue_minor bigint NOT NULL,
    gross_minor bigint NOT NULL,
    -- The visitor the order was stitched to (a late touchpoint of theirs re-attributes it).
    visitor_id text,
    -- The tenant's reporting currency and the rate stamped at order time: reporting minor
    -- units per order minor unit; NULL when no rate was known.
    reporting_currency char(3) NOT NULL,
    fx_rate numeric,
    fx_factor numeric,
    models text[] NOT NULL,
    model_versions integer[] NOT NULL,
    -- The channels of the order's path, in the fixed channel order.
    channels text[] NOT NULL,
    -- Big-endian int64 minor units, for each channel, then net and gross (sales only), then
    -- each model: credit_minor(credits, (channel * 2 + kind) * cardinality(models) + model).
    credits bytea NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id),
    CHECK (cardinality(models) = cardinality(model_versions)),
    CHECK (length(credits) = 16 * cardinality(models) * cardinality(channels))
-- Room on each page, so a recompute's rewrite of a row is a HOT update (no index entries).
) WITH (fillfactor = 50);
CREATE INDEX order_attributions_visitor ON order_attributions (tenant_id, visitor_id)
    WHERE visitor_id IS NOT NULL;

-- The int64 at a given index of packed credits.
CREATE FUNCTION credit_minor(credits bytea, index integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || encode(substring(credits FROM index * 8 + 1 FOR 8), 'hex'))::bit(64)::bigint
$$;

-- Per order and model: what the credits add up to against the revenue they split. Computed
-- from the stored credits, so a row that does not balance shows it.
CREATE VIEW allocation_summary WITH (security_invoker = true) AS
SELECT a.tenant_id, a.order_id, m.model, a.day, a.currency,
       a.revenue_minor AS revenue_cents, t.allocated AS allocated_cents,
       t.allocated - a.revenue_minor AS drift_cents, t.allocated = a.revenue_minor AS is_balanced,
       a.computed_at AS refreshed_at
FROM order_attributions a
CROSS JOIN LATERAL unnest(a.models) WITH ORDINALITY AS m(model, position)
CROSS JOIN LATERAL (
    SELECT coalesce(sum(credit_minor(a.credits,
                                     (c * 2) * cardinality(a.models) + m.position::integer - 1)),
                    0)::bigint AS allocated
    FROM generate_series(0, cardinality(a.channels) - 1) AS c
) t;

-- Revenue, refunds and net credited per (order day, currency, model, channel), and the orders
-- with sales credit there. The recompute adds each order's change in the same transaction as
-- the order's row, so the two always agree.
CREATE TABLE channel_daily (
    tenant_id uuid NOT NULL,
    model text NOT NULL,
    day date NOT NULL,
    currency char(3) NOT NULL,
    channel text NOT NULL,
    revenue_minor bigint NOT NULL,
    refunds_minor bigint NOT NULL,
    net_minor bigint NOT NULL,
    orders bigint NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model, day, currency, channel)
);

-- Rebuilt attributions come from pending orders.
INSERT INTO pending_orders (tenant_id, order_id, order_version)
SELECT tenant_id, order_id, version FROM orders WHERE has_snapshot
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now();
"""

POLICY = """
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""

RUNTIME_GRANTS = {
    "order_attributions": "SELECT, INSERT, UPDATE, DELETE",
    "channel_daily": "SELECT, INSERT, UPDATE, DELETE",
    "allocation_summary": "SELECT",
    # Only the recompute's reclassification updates touchpoints.
    "touchpoints": "UPDATE (channel, rules_version)",
}


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    for table in ("order_attributions", "channel_daily"):
        op.execute(POLICY.format(table=table))
    for table, privileges in RUNTIME_GRANTS.items():
        op.execute(f'GRANT {privileges} ON {table} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
