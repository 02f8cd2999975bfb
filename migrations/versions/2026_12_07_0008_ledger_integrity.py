"""Ledger integrity: functions that give the caller its tenant back.

`set_config('app.tenant_id', ..., true)` lasts to the end of the caller's transaction, not of
the function. Every function that sets the tenant for its own body now reads the caller's
setting first and puts it back at its one exit, so a caller continues under its own context
(or none). An error needs no restore: it aborts the transaction, or rolls back the savepoint
that holds the setting. (A `SET app.tenant_id` clause on the function would restore it too, but
attaching a clause for a custom parameter needs a superuser's `GRANT SET ON PARAMETER`, which a
managed PostgreSQL may not give.)

Writers of one order are serialized: every path through `apply_event_to_ledger` locks the
order's row before it writes an entry (a refund used to write its entry first, so a concurrent
cancellation summed without it and the cancelled order kept revenue).

Revision ID: 20261207_0008
Revises: 20261126_0007
Create Date: 2026-12-07
"""

from alembic import op

revision = "20261207_0008"
down_revision = "20261126_0007"
branch_labels = None
depends_on = None

TENANT_SCOPED_FUNCTIONS = r"""
-- The debounce: true for exactly one caller while no fresh chain is queued for the tenant.
CREATE OR REPLACE FUNCTION claim_chain(p_tenant uuid, p_stale interval)
RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp AS $$
DECLARE
    v_caller_tenant text := coalesce(current_setting('app.tenant_id', true), '');
    v_claimed boolean;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    INSERT INTO chain_state AS c (tenant_id, queued_at) VALUES (p_tenant, now())
    ON CONFLICT (tenant_id) DO UPDATE SET queued_at = now()
        WHERE c.queued_at IS NULL OR c.queued_at < now() - p_stale
    RETURNING true INTO v_claimed;
    PERFORM set_config('app.tenant_id', v_caller_tenant, true);
    RETURN coalesce(v_claimed, false);
END
$$;

-- Apply one stored event to the order ledger and mark the order pending when it changed.
-- A re-parse (p_reparse) applies the newest snapshot again even at the same source time (a
-- parser fix changes values, not times), leaves an order whose values did not change alone,
-- and corrects the refunds the same event booked. Runs as the caller, under RLS.
CREATE OR REPLACE FUNCTION apply_event_to_ledger(
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
    v_caller_tenant text := coalesce(current_setting('app.tenant_id', true), '');
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    -- One exit, after the block: leave it with EXIT ledger, never RETURN (see the header).
    <<ledger>>
    BEGIN
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
            -- Writers of one order take turns on its row before they write any entry (a
            -- snapshot's upsert above holds the same lock): a cancellation then sums every
            -- entry written before it, and a refund after it sees the cancellation. KEY SHARE
            -- (foreign key checks of other tables) still passes.
            SELECT o.order_id, o.version, o.cancelled_at, o.currency
                INTO v_order, v_version, v_cancelled_at, v_currency FROM orders o
            WHERE o.tenant_id = p_tenant AND o.provider = p_provider
              AND o.external_order_id = p_order->>'external_order_id'
            FOR NO KEY UPDATE;
        END IF;

        INSERT INTO revenue_entries AS r (tenant_id, order_id, provider, external_entry_id, kind,
            amount_minor, currency, occurred_at, event_id)
        SELECT p_tenant, v_order, p_provider, x.external_id, x.kind, x.amount_minor, x.currency,
               x.occurred_at, p_event
        FROM jsonb_to_recordset(coalesce(p_entries, '[]')) AS x(
            external_id text, kind text, amount_minor bigint, currency text,
            occurred_at timestamptz)
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
            INSERT INTO revenue_entries AS r (tenant_id, order_id, provider, external_entry_id,
                kind, amount_minor, currency, occurred_at, event_id)
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
            EXIT ledger;
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
    END ledger;
    PERFORM set_config('app.tenant_id', v_caller_tenant, true);
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
    v_caller_tenant text := coalesce(current_setting('app.tenant_id', true), '');
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
    ELSE
        RETURN QUERY SELECT 'accepted'::text, v_event, a.order_id, a.needs_chain
            FROM apply_event_to_ledger(p_tenant, p_provider, v_event, p_order, p_entries,
                                       p_stale, false) AS a;
    END IF;
    PERFORM set_config('app.tenant_id', v_caller_tenant, true);
END
$$;
"""


def upgrade() -> None:
    # CREATE OR REPLACE keeps the grants made when the functions were created.
    op.execute(TENANT_SCOPED_FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
