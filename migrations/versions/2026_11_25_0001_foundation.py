"""Foundation: tenants, keys, sources, the inbox, the order ledger, attribution, reports.

Every tenant table leads its keys with tenant_id and is guarded by one row-level security
policy; the runtime role gets only the DML it needs and owns nothing.

Revision ID: 20261125_0001
Revises:
Create Date: 2026-11-25
"""

from alembic import context, op

revision = "20261125_0001"
down_revision = None
branch_labels = None
depends_on = None

TENANT_TABLES = (
    "tenants",
    "api_keys",
    "webhook_sources",
    "webhook_source_secrets",
    "webhook_events",
    "dead_events",
    "orders",
    "revenue_entries",
    "pending_orders",
    "chain_state",
    "attribution_allocations",
    "recompute_jobs",
    "report_dirty_orders",
    "allocation_summary",
)

# table -> privileges of the runtime role (row-level security narrows every one of them)
RUNTIME_GRANTS = {
    "tenants": "SELECT",
    "webhook_sources": "SELECT",
    "webhook_events": "SELECT, INSERT",
    "dead_events": "SELECT, INSERT, UPDATE",
    "orders": "SELECT, INSERT, UPDATE",
    "revenue_entries": "SELECT, INSERT, UPDATE",
    "pending_orders": "SELECT, INSERT, UPDATE, DELETE",
    "chain_state": "SELECT, INSERT, UPDATE",
    "attribution_allocations": "SELECT, INSERT, UPDATE, DELETE",
    "recompute_jobs": "SELECT, INSERT, UPDATE",
    "report_dirty_orders": "SELECT, INSERT, UPDATE, DELETE",
    "allocation_summary": "SELECT, INSERT, UPDATE, DELETE",
}

# Tables written on every webhook or recompute carry no foreign key to tenants: each such key
# check takes a KEY SHARE lock on the tenant's row, and concurrent webhooks of one tenant would
# pile MultiXacts onto that one row. Tenant ids there come from resolved credentials only.
# Derived rows (allocations, report rows) carry none to orders either: they are rewritten by
# the recompute and refresh alone, and a key check per written row is their largest cost.
SCHEMA = r"""
CREATE TABLE tenants (
    tenant_id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    reporting_currency char(3) NOT NULL DEFAULT 'USD' CHECK (reporting_currency ~ '^[A-Z]{3}$'),
    -- Keys pseudonymous customer references (an HMAC key per tenant), never shown.
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    key_id uuid NOT NULL,
    key_hash bytea NOT NULL,
    scope text NOT NULL CHECK (scope IN ('read', 'admin', 'webhook', 'collect')),
    label text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, key_id),
    UNIQUE (tenant_id, key_hash)
);

CREATE TABLE webhook_sources (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    source_id uuid NOT NULL,
    provider text NOT NULL
        CHECK (provider IN ('shopify', 'stripe', 'woocommerce', 'paypal', 'standard')),
    token_hash bytea NOT NULL,
    label text,
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    PRIMARY KEY (tenant_id, source_id),
    UNIQUE (tenant_id, token_hash)
);

CREATE TABLE webhook_source_secrets (
    tenant_id uuid NOT NULL,
    source_id uuid NOT NULL,
    secret_id uuid NOT NULL,
    ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- A retired secret keeps verifying until this instant (providers roll over slowly).
    retired_at timestamptz,
    PRIMARY KEY (tenant_id, source_id, secret_id),
    FOREIGN KEY (tenant_id, source_id) REFERENCES webhook_sources ON DELETE CASCADE
);

CREATE TABLE webhook_events (
    tenant_id uuid NOT NULL,
    event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    source_id uuid NOT NULL,
    provider text NOT NULL,
    topic text NOT NULL,
    dedupe_key text NOT NULL,
    external_order_id text,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- The verdict reached when the request arrived; replays never re-check freshness.
    signature_verified boolean NOT NULL DEFAULT true,
    payload jsonb NOT NULL,
    PRIMARY KEY (tenant_id, event_id),
    UNIQUE (tenant_id, provider, dedupe_key)
);
CREATE INDEX webhook_events_received ON webhook_events (tenant_id, received_at);

CREATE TABLE dead_events (
    tenant_id uuid NOT NULL,
    dead_event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    source_id uuid NOT NULL,
    provider text NOT NULL,
    topic text,
    reason text NOT NULL,
    body_sha256 bytea NOT NULL,
    -- The raw body may hold personal data: it is kept only encrypted, for replay after a fix.
    body_ciphertext bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    PRIMARY KEY (tenant_id, dead_event_id),
    UNIQUE (tenant_id, source_id, body_sha256)
);

CREATE TABLE orders (
    tenant_id uuid NOT NULL,
    order_id uuid NOT NULL DEFAULT gen_random_uuid(),
    provider text NOT NULL,
    external_order_id text NOT NULL,
    -- False while only refunds have arrived: the order itself is still on its way.
    has_snapshot boolean NOT NULL DEFAULT false,
    currency char(3),
    total_minor bigint,
    presentment_currency char(3),
    presentment_total_minor bigint,
    ordered_at timestamptz,
    source_updated_at timestamptz,
    hints jsonb NOT NULL DEFAULT '{}',
    version bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id),
    UNIQUE (tenant_id, provider, external_order_id)
);

CREATE TABLE revenue_entries (
    tenant_id uuid NOT NULL,
    entry_id uuid NOT NULL DEFAULT gen_random_uuid(),
    order_id uuid NOT NULL,
    provider text NOT NULL,
    external_entry_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('sale', 'refund', 'cancellation')),
    amount_minor bigint NOT NULL,
    currency char(3) NOT NULL,
    occurred_at timestamptz NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, entry_id),
    UNIQUE (tenant_id, provider, external_entry_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders ON DELETE CASCADE
);
CREATE INDEX revenue_entries_order ON revenue_entries (tenant_id, order_id);

-- The outbox: orders whose attribution is stale. A recompute clears a mark only if the
-- order's version is still the one it read.
CREATE TABLE pending_orders (
    tenant_id uuid NOT NULL,
    order_id uuid NOT NULL,
    order_version bigint NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders ON DELETE CASCADE
);
CREATE INDEX pending_orders_marked ON pending_orders (tenant_id, marked_at);

-- One row per tenant: whether a chain is queued and not yet started (the debounce flag).
CREATE TABLE chain_state (
    tenant_id uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    queued_at timestamptz,
    last_started_at timestamptz,
    last_finished_at timestamptz
);

-- One row per order and model: credits as parallel arrays, so a recompute writes
-- one row per model rather than one per credit.
CREATE TABLE attribution_allocations (
    tenant_id uuid NOT NULL,
    order_id uuid NOT NULL,
    model text NOT NULL,
    model_version integer NOT NULL,
    currency char(3) NOT NULL,
    revenue_minor bigint NOT NULL,
    channels text[] NOT NULL,
    credits_minor bigint[] NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id, model),
    CHECK (cardinality(channels) = cardinality(credits_minor))
);

CREATE TABLE recompute_jobs (
    tenant_id uuid NOT NULL,
    job_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    run_count integer NOT NULL DEFAULT 1,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    duration_ms integer,
    batches integer NOT NULL DEFAULT 0,
    orders_processed integer NOT NULL DEFAULT 0,
    error text,
    PRIMARY KEY (tenant_id, job_id)
);
CREATE INDEX recompute_jobs_started ON recompute_jobs (tenant_id, started_at);

-- Orders whose report rows must be refreshed (filled by recompute, drained by refresh).
CREATE TABLE report_dirty_orders (
    tenant_id uuid NOT NULL,
    order_id uuid NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id)
);

CREATE TABLE allocation_summary (
    tenant_id uuid NOT NULL,
    order_id uuid NOT NULL,
    model text NOT NULL,
    day date NOT NULL,
    currency char(3) NOT NULL,
    revenue_cents bigint NOT NULL,
    allocated_cents bigint NOT NULL,
    drift_cents bigint NOT NULL,
    is_balanced boolean NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id, model)
);
CREATE INDEX allocation_summary_day ON allocation_summary (tenant_id, day);
"""

POLICY = """
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""

FUNCTIONS = r"""
-- Lookups before any tenant context run as the owner with a fixed search_path and answer
-- for one (tenant, credential hash) pair only.
CREATE FUNCTION resolve_api_key(p_tenant uuid, p_key_hash bytea)
RETURNS TABLE (key_id uuid, scope text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT key_id, scope FROM public.api_keys
    WHERE tenant_id = p_tenant AND key_hash = p_key_hash AND revoked_at IS NULL
$$;

-- For the sweeper, which serves every tenant: tenant ids only, never their rows.
CREATE FUNCTION tenants_needing_recompute(p_grace interval, p_stale interval)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.tenant_id
    FROM public.pending_orders p
    LEFT JOIN public.chain_state c ON c.tenant_id = p.tenant_id
    WHERE p.marked_at < now() - p_grace
      AND (c.queued_at IS NULL OR c.queued_at < now() - p_stale)
    GROUP BY p.tenant_id
$$;

-- The debounce: true for exactly one caller while no fresh chain is queued for the tenant.
CREATE FUNCTION claim_chain(p_tenant uuid, p_stale interval)
RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp AS $$
DECLARE
    v_claimed boolean;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    INSERT INTO chain_state AS c (tenant_id, queued_at) VALUES (p_tenant, now())
    ON CONFLICT (tenant_id) DO UPDATE SET queued_at = now()
        WHERE c.queued_at IS NULL OR c.queued_at < now() - p_stale
    RETURNING true INTO v_claimed;
    RETURN coalesce(v_claimed, false);
END
$$;

"""

RUNTIME_FUNCTIONS = (
    "resolve_api_key(uuid, bytea)",
    "tenants_needing_recompute(interval, interval)",
    "claim_chain(uuid, interval)",
)


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    for table in TENANT_TABLES:
        op.execute(POLICY.format(table=table))
    op.execute(FUNCTIONS)
    for signature in RUNTIME_FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{runtime}"')
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{runtime}"')
    for table, privileges in RUNTIME_GRANTS.items():
        op.execute(f'GRANT {privileges} ON {table} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
