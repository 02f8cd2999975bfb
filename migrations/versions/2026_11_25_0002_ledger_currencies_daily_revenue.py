"""Cancellations that net an order to zero, exchange rates, and the daily revenue report.

Revision ID: 20261125_0002
Revises: 20261125_0001
Create Date: 2026-11-25
"""

from alembic import context, op

revision = "20261125_0002"
down_revision = "20261125_0001"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE orders
    ADD COLUMN cancelled_at timestamptz,
    -- Stamped by the recompute: reporting minor units per order minor unit at order time,
    -- NULL when no rate was known (the order is then reported in its own currency only).
    ADD COLUMN reporting_currency char(3),
    ADD COLUMN fx_rate numeric,
    ADD COLUMN fx_factor numeric;

-- What links an order to a visitor's journey: the visitor id it carries, and keyed digests
-- (stitch keys) of its checkout token, cart token and customer reference.
ALTER TABLE orders
    -- The visitor the recompute linked the order to (so a late touchpoint finds its orders).
    ADD COLUMN stitched_visitor_id text,
    ADD COLUMN visitor_id text,
    ADD COLUMN checkout_key bytea,
    ADD COLUMN cart_key bytea,
    ADD COLUMN customer_key bytea;
CREATE INDEX orders_visitor ON orders (tenant_id, visitor_id) WHERE visitor_id IS NOT NULL;
CREATE INDEX orders_stitched_visitor ON orders (tenant_id, stitched_visitor_id)
    WHERE stitched_visitor_id IS NOT NULL;
CREATE INDEX orders_checkout ON orders (tenant_id, checkout_key) WHERE checkout_key IS NOT NULL;
CREATE INDEX orders_cart ON orders (tenant_id, cart_key) WHERE cart_key IS NOT NULL;
CREATE INDEX orders_customer ON orders (tenant_id, customer_key) WHERE customer_key IS NOT NULL;

ALTER TABLE attribution_allocations
    -- Credits of the sales alone; credits_minor minus these are the refunds' credits.
    ADD COLUMN gross_credits_minor bigint[];

-- What of each entry the daily revenue report already counts, so a refresh adds only the
-- difference (NULL: not counted yet). The report's cost follows the change, not the day.
ALTER TABLE revenue_entries
    ADD COLUMN reported_amount_minor bigint,
    ADD COLUMN reported_reporting_minor bigint,
    ADD COLUMN reported_converted boolean;

-- Daily rates per currency pair, shared by every tenant (market data, not tenant data).
CREATE TABLE fx_rates (
    day date NOT NULL,
    base char(3) NOT NULL CHECK (base ~ '^[A-Z]{3}$'),
    quote char(3) NOT NULL CHECK (quote ~ '^[A-Z]{3}$'),
    rate numeric NOT NULL CHECK (rate > 0),
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, base, quote)
);

CREATE TABLE daily_revenue (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    currency char(3) NOT NULL,
    gross_minor bigint NOT NULL,
    refunds_minor bigint NOT NULL,
    cancellations_minor bigint NOT NULL,
    net_minor bigint NOT NULL,
    orders integer NOT NULL,
    reporting_currency char(3) NOT NULL,
    gross_reporting_minor bigint NOT NULL,
    refunds_reporting_minor bigint NOT NULL,
    cancellations_reporting_minor bigint NOT NULL,
    net_reporting_minor bigint NOT NULL,
    -- Entries of orders with no known rate: counted in their own currency only.
    unconverted_entries integer NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day, currency),
    CHECK (net_minor = gross_minor + refunds_minor + cancellations_minor),
    CHECK (net_reporting_minor = gross_reporting_minor + refunds_reporting_minor
                                 + cancellations_reporting_minor)
);

-- Fresh statistics early: until the first ANALYZE, plans see near-empty tables, and on
-- empty tables every index led by tenant_id costs the same (see skeldir.db).
ALTER TABLE webhook_events SET (autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE orders SET (autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE revenue_entries SET (autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE pending_orders SET (autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);

ALTER TABLE daily_revenue ENABLE ROW LEVEL SECURITY;
ALTER TABLE daily_revenue FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON daily_revenue
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""

INGEST_FUNCTION = r"""
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
    v_cancelled_at timestamptz;
    v_other bigint;
    v_currency text;
    v_changed_cancellation integer := 0;
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
            source_updated_at, hints, cancelled_at, visitor_id, checkout_key, cart_key,
            customer_key)
        VALUES (p_tenant, p_provider, p_order->>'external_order_id', true,
            p_order->>'currency', (p_order->>'total_minor')::bigint,
            p_order->>'presentment_currency', (p_order->>'presentment_total_minor')::bigint,
            (p_order->>'ordered_at')::timestamptz, (p_order->>'updated_at')::timestamptz,
            coalesce(p_order->'hints', '{}'), (p_order->>'cancelled_at')::timestamptz,
            p_order->>'visitor_id', decode(p_order->>'checkout_key', 'hex'),
            decode(p_order->>'cart_key', 'hex'), decode(p_order->>'customer_key', 'hex'))
        ON CONFLICT (tenant_id, provider, external_order_id) DO UPDATE SET
            has_snapshot = true,
            currency = EXCLUDED.currency,
            total_minor = EXCLUDED.total_minor,
            presentment_currency = EXCLUDED.presentment_currency,
            presentment_total_minor = EXCLUDED.presentment_total_minor,
            ordered_at = EXCLUDED.ordered_at,
            source_updated_at = EXCLUDED.source_updated_at,
            hints = EXCLUDED.hints,
            -- A cancellation, once known, is never undone by an older or silent snapshot.
            cancelled_at = coalesce(EXCLUDED.cancelled_at, o.cancelled_at),
            visitor_id = coalesce(EXCLUDED.visitor_id, o.visitor_id),
            checkout_key = coalesce(EXCLUDED.checkout_key, o.checkout_key),
            cart_key = coalesce(EXCLUDED.cart_key, o.cart_key),
            customer_key = coalesce(EXCLUDED.customer_key, o.customer_key),
            version = o.version + 1,
            updated_at = now()
        WHERE NOT o.has_snapshot
           OR o.source_updated_at IS NULL
           OR EXCLUDED.source_updated_at IS NULL
           OR EXCLUDED.source_updated_at > o.source_updated_at
        RETURNING o.order_id, o.version, o.cancelled_at, o.currency
            INTO v_order, v_version, v_cancelled_at, v_currency;
        v_snapshot_applied := v_order IS NOT NULL;
    END IF;

    IF v_order IS NULL THEN
        -- A refund can arrive before its order: keep a placeholder the order fills later.
        INSERT INTO orders AS o (tenant_id, provider, external_order_id, currency, ordered_at)
        VALUES (p_tenant, p_provider, p_order->>'external_order_id', p_order->>'currency',
                (p_order->>'ordered_at')::timestamptz)
        ON CONFLICT (tenant_id, provider, external_order_id) DO NOTHING;
        SELECT o.order_id, o.version, o.cancelled_at, o.currency
            INTO v_order, v_version, v_cancelled_at, v_currency FROM orders o
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

    -- A cancelled order nets to zero: its cancellation entry offsets everything else,
    -- including refunds that arrive after the cancellation.
    IF v_cancelled_at IS NOT NULL THEN
        SELECT coalesce(sum(r.amount_minor), 0) INTO v_other FROM revenue_entries r
        WHERE r.tenant_id = p_tenant AND r.order_id = v_order AND r.kind <> 'cancellation';
        INSERT INTO revenue_entries AS r (tenant_id, order_id, provider, external_entry_id, kind,
            amount_minor, currency, occurred_at, event_id)
        VALUES (p_tenant, v_order, p_provider, 'cancel:' || (p_order->>'external_order_id'),
                'cancellation', -v_other, coalesce(v_currency, p_order->>'currency'),
                v_cancelled_at, v_event)
        ON CONFLICT (tenant_id, provider, external_entry_id) DO UPDATE
            SET amount_minor = EXCLUDED.amount_minor
            WHERE r.amount_minor <> EXCLUDED.amount_minor;
        GET DIAGNOSTICS v_changed_cancellation = ROW_COUNT;
        v_new_entries := v_new_entries + v_changed_cancellation;
    END IF;

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


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    op.execute(INGEST_FUNCTION)
    signature = "ingest_event(uuid, uuid, text, text, text, jsonb, jsonb, jsonb, interval)"
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{runtime}"')
    op.execute(f'GRANT SELECT ON fx_rates TO "{runtime}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON daily_revenue TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
