"""Operations on stored events: replaying dead events and re-parsing webhook events.

A dead event records what its replays did. The ledger half of `ingest_event` becomes its own
function, `apply_event_to_ledger`, so a re-parse can apply a stored event again without
storing it twice; `ingest_event` keeps its signature and behaviour and calls it.

Revision ID: 20261126_0006
Revises: 20261126_0005
Create Date: 2026-11-26
"""

from alembic import context, op

revision = "20261126_0006"
down_revision = "20261126_0005"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE dead_events
    -- The webhook event a successful replay stored, or found stored already ('duplicate').
    ADD COLUMN replayed_event_id uuid,
    ADD COLUMN replay_outcome text CHECK (replay_outcome IN ('replayed', 'duplicate')),
    ADD COLUMN replay_attempts integer NOT NULL DEFAULT 0,
    -- Why the last replay still failed (reasons name fields, never values).
    ADD COLUMN last_replay_error text,
    ADD COLUMN last_replay_at timestamptz;
CREATE INDEX dead_events_received ON dead_events (tenant_id, received_at);

ALTER TABLE webhook_events ADD COLUMN reparsed_at timestamptz;
"""

LEDGER_FUNCTIONS = r"""
-- Apply one stored event to the order ledger and mark the order pending when it changed.
-- A re-parse (p_reparse) applies the newest snapshot again even at the same source time (a
-- parser fix changes values, not times), leaves an order whose values did not change alone,
-- and corrects the refunds the same event booked. Runs as the caller, under RLS.
CREATE FUNCTION apply_event_to_ledger(
    p_tenant uuid, p_provider text, p_event uuid, p_order jsonb, p_entries jsonb,
    p_stale interval, p_reparse boolean
)
RETURNS TABLE (order_id uuid, changed boolean, needs_chain boolean)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_order uuid;
    v_version bigint;
    v_snapshot_applied boolean := false;
    -- Whether this event's snapshot may set the order's sale: it is the newest one.
    v_snapshot_current boolean := false;
    v_new_entries integer := 0;
    v_cancelled_at timestamptz;
    v_other bigint;
    v_currency text;
    v_changed_cancellation integer := 0;
    v_queued timestamptz;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);

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
        WHERE (NOT o.has_snapshot
               OR o.source_updated_at IS NULL
               -- On arrival the last snapshot without a time wins; a re-parse cannot tell
               -- whether it is the newest, so it keeps the one with a time.
               OR (EXCLUDED.source_updated_at IS NULL AND NOT p_reparse)
               OR EXCLUDED.source_updated_at > o.source_updated_at
               OR (p_reparse AND EXCLUDED.source_updated_at = o.source_updated_at))
          AND (NOT p_reparse
               OR (o.has_snapshot, o.currency, o.total_minor, o.presentment_currency,
                   o.presentment_total_minor, o.ordered_at, o.source_updated_at, o.hints,
                   o.cancelled_at, o.visitor_id, o.checkout_key, o.cart_key, o.customer_key)
                  IS DISTINCT FROM
                  (true, EXCLUDED.currency, EXCLUDED.total_minor, EXCLUDED.presentment_currency,
                   EXCLUDED.presentment_total_minor, EXCLUDED.ordered_at,
                   EXCLUDED.source_updated_at, EXCLUDED.hints,
                   coalesce(EXCLUDED.cancelled_at, o.cancelled_at),
                   coalesce(EXCLUDED.visitor_id, o.visitor_id),
                   coalesce(EXCLUDED.checkout_key, o.checkout_key),
                   coalesce(EXCLUDED.cart_key, o.cart_key),
                   coalesce(EXCLUDED.customer_key, o.customer_key)))
        RETURNING o.order_id, o.version, o.cancelled_at, o.currency
            INTO v_order, v_version, v_cancelled_at, v_currency;
        v_snapshot_applied := v_order IS NOT NULL;
        v_snapshot_current := v_snapshot_applied;
        IF p_reparse AND NOT v_snapshot_applied THEN
            -- Unchanged, but possibly still the newest: its sale may need correcting.
            SELECT coalesce(o.source_updated_at IS NULL
                            OR (p_order->>'updated_at')::timestamptz >= o.source_updated_at,
                            false)
                INTO v_snapshot_current FROM orders o
            WHERE o.tenant_id = p_tenant AND o.provider = p_provider
              AND o.external_order_id = p_order->>'external_order_id';
        END IF;
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
           x.occurred_at, p_event
    FROM jsonb_to_recordset(coalesce(p_entries, '[]')) AS x(
        external_id text, kind text, amount_minor bigint, currency text, occurred_at timestamptz)
    ON CONFLICT (tenant_id, provider, external_entry_id) DO UPDATE
        SET amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency
        WHERE (r.amount_minor, r.currency)
              IS DISTINCT FROM (EXCLUDED.amount_minor, EXCLUDED.currency)
          AND (
            -- An edited order changes its sale; only the newest snapshot may do that.
            (v_snapshot_current AND r.kind = 'sale' AND EXCLUDED.kind = 'sale')
            -- A re-parse corrects what this very event booked; a sale may have been edited
            -- by a newer snapshot since, so sales follow the rule above.
            OR (p_reparse AND r.event_id = p_event AND r.kind <> 'sale'
                AND r.kind = EXCLUDED.kind));
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
                v_cancelled_at, p_event)
        ON CONFLICT (tenant_id, provider, external_entry_id) DO UPDATE
            SET amount_minor = EXCLUDED.amount_minor
            WHERE r.amount_minor <> EXCLUDED.amount_minor;
        GET DIAGNOSTICS v_changed_cancellation = ROW_COUNT;
        v_new_entries := v_new_entries + v_changed_cancellation;
    END IF;

    IF NOT v_snapshot_applied AND v_new_entries = 0 THEN
        -- A stale update or entries already known: nothing to recompute.
        RETURN QUERY SELECT v_order, false, false;
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
    RETURN QUERY SELECT v_order, true, (v_queued IS NULL OR v_queued < now() - p_stale);
END
$$;

-- The whole ingest in one round trip: tenant context first, then the event insert with
-- dedupe, then the ledger. Runs as the caller, under RLS.
CREATE OR REPLACE FUNCTION ingest_event(
    p_tenant uuid, p_source uuid, p_provider text, p_topic text, p_dedupe text,
    p_payload jsonb, p_order jsonb, p_entries jsonb, p_stale interval
)
RETURNS TABLE (status text, event_id uuid, order_id uuid, needs_chain boolean)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_event uuid;
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

    RETURN QUERY SELECT 'accepted'::text, v_event, a.order_id, a.needs_chain
        FROM apply_event_to_ledger(p_tenant, p_provider, v_event, p_order, p_entries, p_stale,
                                   false) AS a;
END
$$;
"""


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    op.execute(LEDGER_FUNCTIONS)
    signature = "apply_event_to_ledger(uuid, text, uuid, jsonb, jsonb, interval, boolean)"
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{runtime}"')
    # A re-parse stamps the events it read; nothing else of a stored event ever changes.
    op.execute(f'GRANT UPDATE (reparsed_at) ON webhook_events TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
