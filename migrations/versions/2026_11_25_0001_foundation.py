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
-- Source lookup happens before any tenant context exists, so it runs as the owner with a
-- fixed search_path, answers for one (tenant, token hash) pair only, and returns secrets
-- still encrypted.
CREATE FUNCTION resolve_source(p_tenant uuid, p_token_hash bytea)
RETURNS TABLE (source_id uuid, provider text, settings jsonb, secrets bytea[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.source_id, s.provider, s.settings,
           coalesce(array_agg(k.ciphertext ORDER BY k.created_at DESC)
                    FILTER (WHERE k.secret_id IS NOT NULL), '{}')
    FROM public.webhook_sources s
    LEFT JOIN public.webhook_source_secrets k
           ON k.tenant_id = s.tenant_id AND k.source_id = s.source_id
          AND (k.retired_at IS NULL OR k.retired_at > now())
    WHERE s.tenant_id = p_tenant AND s.token_hash = p_token_hash AND s.disabled_at IS NULL
    GROUP BY s.source_id, s.provider, s.settings
$$;

-- The tenant key route (X-Skeldir-Tenant-Key): the tenant's oldest enabled source for a provider.
CREATE FUNCTION resolve_source_by_key(p_tenant uuid, p_key_hash bytea, p_provider text)
RETURNS TABLE (source_id uuid, provider text, settings jsonb, secrets bytea[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.source_id, s.provider, s.settings,
           coalesce(array_agg(k.ciphertext ORDER BY k.created_at DESC)
                    FILTER (WHERE k.secret_id IS NOT NULL), '{}')
    FROM public.api_keys a
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
    GROUP BY s.source_id, s.provider, s.settings, s.created_at
$$;

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

-- The whole ingest in one round trip: tenant context first, then the event insert with
-- dedupe, the ledger update and the pending mark. Runs as the caller, under RLS.
CREATE FUNCTION ingest_event(
    p_tenant uuid, p_source uuid, p_provider text, p_topic text, p_dedupe text,
    p_payload jsonb, p_order jsonb, p_entries jsonb, p_stale interval
)
RETURNS TABLE (status text, event_id uuid, order_id uuid, needs_chain boolean)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_event uuid;
    v_order uuid;
    v_version bigint;
    v_snapshot_applied boolean := false;
    v_new_entries integer := 0;
    v_queued timestamptz;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);

    INSERT INTO webhook_events AS e
        (tenant_id, source_id, provider, topic, dedupe_key, external_order_id, payload)
    VALUES (p_tenant, p_source, p_provider, p_topic, p_dedupe,
            p_order->>'external_order_id', p_payload)
    ON CONFLICT (tenant_id, provider, dedupe_key) DO NOTHING
    RETURNING e.event_id INTO v_event;

    IF v_event IS NULL THEN
        SELECT e.event_id INTO v_event FROM webhook_events e
        WHERE e.tenant_id = p_tenant AND e.provider = p_provider AND e.dedupe_key = p_dedupe;
        RETURN QUERY SELECT 'duplicate'::text, v_event, NULL::uuid, false;
        RETURN;
    END IF;

    IF (p_order->>'has_snapshot')::boolean THEN
        -- An older snapshot never overwrites a newer one (providers do not keep order).
        INSERT INTO orders AS o (tenant_id, provider, external_order_id, has_snapshot, currency,
            total_minor, presentment_currency, presentment_total_minor, ordered_at,
            source_updated_at, hints)
        VALUES (p_tenant, p_provider, p_order->>'external_order_id', true,
            p_order->>'currency', (p_order->>'total_minor')::bigint,
            p_order->>'presentment_currency', (p_order->>'presentment_total_minor')::bigint,
            (p_order->>'ordered_at')::timestamptz, (p_order->>'updated_at')::timestamptz,
            coalesce(p_order->'hints', '{}'))
        ON CONFLICT (tenant_id, provider, external_order_id) DO UPDATE SET
            has_snapshot = true,
            currency = EXCLUDED.currency,
            total_minor = EXCLUDED.total_minor,
            presentment_currency = EXCLUDED.presentment_currency,
            presentment_total_minor = EXCLUDED.presentment_total_minor,
            ordered_at = EXCLUDED.ordered_at,
            source_updated_at = EXCLUDED.source_updated_at,
            hints = EXCLUDED.hints,
            version = o.version + 1,
            updated_at = now()
        WHERE NOT o.has_snapshot
           OR o.source_updated_at IS NULL
           OR EXCLUDED.source_updated_at IS NULL
           OR EXCLUDED.source_updated_at > o.source_updated_at
        RETURNING o.order_id, o.version INTO v_order, v_version;
        v_snapshot_applied := v_order IS NOT NULL;
    END IF;

    IF v_order IS NULL THEN
        -- A refund can arrive before its order: keep a placeholder the order fills later.
        INSERT INTO orders AS o (tenant_id, provider, external_order_id, currency, ordered_at)
        VALUES (p_tenant, p_provider, p_order->>'external_order_id', p_order->>'currency',
                (p_order->>'ordered_at')::timestamptz)
        ON CONFLICT (tenant_id, provider, external_order_id) DO NOTHING;
        SELECT o.order_id, o.version INTO v_order, v_version FROM orders o
        WHERE o.tenant_id = p_tenant AND o.provider = p_provider
          AND o.external_order_id = p_order->>'external_order_id';
    END IF;

    INSERT INTO revenue_entries AS r (tenant_id, order_id, provider, external_entry_id, kind,
        amount_minor, currency, occurred_at, event_id)
    SELECT p_tenant, v_order, p_provider, x.external_id, x.kind, x.amount_minor, x.currency,
           x.occurred_at, v_event
    FROM jsonb_to_recordset(coalesce(p_entries, '[]')) AS x(
        external_id text, kind text, amount_minor bigint, currency text, occurred_at timestamptz)
    ON CONFLICT (tenant_id, provider, external_entry_id) DO UPDATE
        SET amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency
        -- An edited order changes its sale; only a newer snapshot may do that.
        WHERE v_snapshot_applied AND r.kind = 'sale' AND EXCLUDED.kind = 'sale'
          AND (r.amount_minor, r.currency) IS DISTINCT FROM (EXCLUDED.amount_minor, EXCLUDED.currency);
    GET DIAGNOSTICS v_new_entries = ROW_COUNT;

    IF NOT v_snapshot_applied AND v_new_entries = 0 THEN
        -- A stale update or entries already known: nothing to recompute.
        RETURN QUERY SELECT 'accepted'::text, v_event, v_order, false;
        RETURN;
    END IF;

    IF NOT v_snapshot_applied THEN
        UPDATE orders o SET version = o.version + 1, updated_at = now()
        WHERE o.tenant_id = p_tenant AND o.order_id = v_order
        RETURNING o.version INTO v_version;
    END IF;

    INSERT INTO pending_orders AS p (tenant_id, order_id, order_version)
    VALUES (p_tenant, v_order, v_version)
    ON CONFLICT (tenant_id, order_id) DO UPDATE
        SET order_version = EXCLUDED.order_version, marked_at = now();

    -- Read after the mark is written: a chain that started before this read will find it.
    SELECT c.queued_at INTO v_queued FROM chain_state c WHERE c.tenant_id = p_tenant;
    RETURN QUERY SELECT 'accepted'::text, v_event, v_order,
        (v_queued IS NULL OR v_queued < now() - p_stale);
END
$$;
"""

RUNTIME_FUNCTIONS = (
    "resolve_source(uuid, bytea)",
    "resolve_source_by_key(uuid, bytea, text)",
    "resolve_api_key(uuid, bytea)",
    "tenants_needing_recompute(interval, interval)",
    "claim_chain(uuid, interval)",
    "ingest_event(uuid, uuid, text, text, text, jsonb, jsonb, jsonb, interval)",
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
