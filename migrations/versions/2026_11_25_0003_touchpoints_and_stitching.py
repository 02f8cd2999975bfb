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
    -- False for an identify item: it links a visitor to tokens but is no step of the journey.
    is_visit boolean NOT NULL DEFAULT true,
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


FUNCTIONS = r"""
-- Source lookup happens before any tenant context exists, so it runs as the owner with a
-- fixed search_path, answers for one (tenant, token hash) pair only, and returns secrets still
-- encrypted, with the tenant's stitch key (encrypted) so the edge can turn an order's tokens
-- into stitch keys without another round trip.
CREATE FUNCTION resolve_source(p_tenant uuid, p_token_hash bytea)
RETURNS TABLE (source_id uuid, provider text, settings jsonb, secrets bytea[], stitch_key bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.source_id, s.provider, s.settings,
           coalesce(array_agg(k.ciphertext ORDER BY k.created_at DESC)
                    FILTER (WHERE k.secret_id IS NOT NULL), '{}'),
           t.stitch_key_ciphertext
    FROM public.webhook_sources s
    JOIN public.tenants t ON t.tenant_id = s.tenant_id
    LEFT JOIN public.webhook_source_secrets k
           ON k.tenant_id = s.tenant_id AND k.source_id = s.source_id
          AND (k.retired_at IS NULL OR k.retired_at > now())
    WHERE s.tenant_id = p_tenant AND s.token_hash = p_token_hash AND s.disabled_at IS NULL
    GROUP BY s.source_id, s.provider, s.settings, t.stitch_key_ciphertext
$$;

-- The tenant key route (X-Skeldir-Tenant-Key): the tenant's oldest enabled source for a provider.
CREATE FUNCTION resolve_source_by_key(p_tenant uuid, p_key_hash bytea, p_provider text)
RETURNS TABLE (source_id uuid, provider text, settings jsonb, secrets bytea[], stitch_key bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.source_id, s.provider, s.settings,
           coalesce(array_agg(k.ciphertext ORDER BY k.created_at DESC)
                    FILTER (WHERE k.secret_id IS NOT NULL), '{}'),
           t.stitch_key_ciphertext
    FROM public.api_keys a
    JOIN public.tenants t ON t.tenant_id = a.tenant_id
    JOIN LATERAL (
        SELECT * FROM public.webhook_sources w
        WHERE w.tenant_id = a.tenant_id AND w.provider = p_provider AND w.disabled_at IS NULL
        ORDER BY w.created_at, w.source_id LIMIT 1
    ) s ON true
    LEFT JOIN public.webhook_source_secrets k
           ON k.tenant_id = s.tenant_id AND k.source_id = s.source_id
          AND (k.retired_at IS NULL OR k.retired_at > now())
    WHERE a.tenant_id = p_tenant AND a.key_hash = p_key_hash AND a.scope = 'webhook'
      AND a.revoked_at IS NULL
    GROUP BY s.source_id, s.provider, s.settings, s.created_at, t.stitch_key_ciphertext
$$;
"""

LEARNER_FUNCTION = r"""
-- For the scheduled learner, which serves every tenant: tenant ids only, never their rows.
CREATE FUNCTION tenants_with_touchpoints(p_since timestamptz)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.tenant_id FROM public.tenants t
    WHERE EXISTS (SELECT 1 FROM public.touchpoints p
                  WHERE p.tenant_id = t.tenant_id AND p.occurred_at >= p_since)
$$;
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
    op.execute(FUNCTIONS)
    op.execute(LEARNER_FUNCTION)
    for signature in (
        "resolve_source(uuid, bytea)",
        "resolve_source_by_key(uuid, bytea, text)",
        "tenants_with_touchpoints(timestamptz)",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{runtime}"')
    for table in ("touchpoints", "channel_rule_sets", "model_weights"):
        op.execute(POLICY.format(table=table))
    for table, privileges in RUNTIME_GRANTS.items():
        op.execute(f'GRANT {privileges} ON {table} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
