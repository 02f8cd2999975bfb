"""Touchpoints, the keys that stitch orders to visitors, and per-tenant attribution settings.

Revision ID: 20261125_0003
Revises: 20261125_0002
Create Date: 2026-11-25
"""

from alembic import context, op

revision = "20261125_0003"
down_revision = "20261125_0002"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE tenants
    ADD COLUMN lookback_days integer NOT NULL DEFAULT 30 CHECK (lookback_days BETWEEN 1 AND 365),
    ADD COLUMN half_life_days numeric NOT NULL DEFAULT 7 CHECK (half_life_days > 0),
    -- Keys the HMAC that turns tokens and customer references into stitch keys; encrypted.
    ADD COLUMN stitch_key_ciphertext bytea;

-- A visit or page view before an order. Tokens and customer references are stored only as
-- keyed HMACs (stitch keys): they join touchpoints to orders and reveal nothing else.
CREATE TABLE touchpoints (
    tenant_id uuid NOT NULL,
    touchpoint_id text NOT NULL,
    visitor_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    hints jsonb NOT NULL DEFAULT '{}',
    checkout_key bytea,
    cart_key bytea,
    customer_key bytea,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, touchpoint_id)
);
CREATE INDEX touchpoints_visitor ON touchpoints (tenant_id, visitor_id, occurred_at);
CREATE INDEX touchpoints_checkout ON touchpoints (tenant_id, checkout_key) WHERE checkout_key IS NOT NULL;
CREATE INDEX touchpoints_cart ON touchpoints (tenant_id, cart_key) WHERE cart_key IS NOT NULL;
CREATE INDEX touchpoints_customer ON touchpoints (tenant_id, customer_key) WHERE customer_key IS NOT NULL;
ALTER TABLE touchpoints SET (autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);

ALTER TABLE orders
    ADD COLUMN visitor_id text,
    ADD COLUMN checkout_key bytea,
    ADD COLUMN cart_key bytea,
    ADD COLUMN customer_key bytea;
CREATE INDEX orders_visitor ON orders (tenant_id, visitor_id) WHERE visitor_id IS NOT NULL;
CREATE INDEX orders_checkout ON orders (tenant_id, checkout_key) WHERE checkout_key IS NOT NULL;
CREATE INDEX orders_cart ON orders (tenant_id, cart_key) WHERE cart_key IS NOT NULL;
CREATE INDEX orders_customer ON orders (tenant_id, customer_key) WHERE customer_key IS NOT NULL;

-- A tenant's channel rules, versioned; the newest version is in force.
CREATE TABLE channel_rule_sets (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    version integer NOT NULL,
    document jsonb NOT NULL,
    fingerprint text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);

-- Channel weights of the data-driven models, learned on a schedule over the lookback period.
CREATE TABLE model_weights (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    model text NOT NULL CHECK (model IN ('markov', 'shapley')),
    version integer NOT NULL,
    weights jsonb NOT NULL,
    paths integer NOT NULL,
    conversions integer NOT NULL,
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    learned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model, version)
);
"""

POLICY = """
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""

RUNTIME_GRANTS = {
    "touchpoints": "SELECT, INSERT",
    "channel_rule_sets": "SELECT",
    "model_weights": "SELECT, INSERT",
}


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    for table in ("touchpoints", "channel_rule_sets", "model_weights"):
        op.execute(POLICY.format(table=table))
    for table, privileges in RUNTIME_GRANTS.items():
        op.execute(f'GRANT {privileges} ON {table} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
