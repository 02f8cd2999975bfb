-- Apply one stored event to the order ledger and mark the order pending when it changed.
-- A re-parse (p_reparse) applies the newest snapshot again even at the same source time (a
-- parser fix changes values, not times), leaves an order whose values did not change alone,
-- and corrects the refunds the same event booked. Runs as the caller, under RLS; gives the
-- caller its tenant context back at its one exit.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.apply_event_to_ledger(p_tenant uuid, p_provider text, p_event uuid, p_order jsonb, p_entries jsonb, p_stale interval, p_reparse boolean)
 RETURNS TABLE(order_id uuid, changed boolean, needs_chain boolean)
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
    v_total bigint;
    v_presentment_currency text;
    v_presentment_total bigint;
    v_unconvertible text;
    v_converted integer := 0;
    v_replaced_sales text[] := '{}';
    v_changed_cancellation integer := 0;
    v_queued timestamptz;
    v_customer bytea;
    v_was_new boolean;
    v_left_customer bytea;
    v_caller_tenant text := coalesce(current_setting('app.tenant_id', true), '');
    -- The store whose order ids these are ('' where the platform's ids span its stores).
    v_store text := coalesce(p_order->>'store', '');
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    -- One exit, after the block: leave it with EXIT ledger, never RETURN (see the header).
    <<ledger>>
    BEGIN
        -- A snapshot may change the order's currency: its entries follow within this call,
        -- and the guard that ties them to the order's currency is checked once both are done.
        SET CONSTRAINTS revenue_entries_order_currency DEFERRED;
        IF (p_order->>'has_snapshot')::boolean THEN
            -- An older snapshot never overwrites a newer one (providers do not keep order).
            INSERT INTO orders AS o (tenant_id, provider, store, external_order_id, has_snapshot,
                currency, total_minor, presentment_currency, presentment_total_minor, ordered_at,
                source_updated_at, hints, cancelled_at, visitor_id, checkout_key, cart_key,
                customer_key)
            VALUES (p_tenant, p_provider, v_store, p_order->>'external_order_id', true,
                p_order->>'currency', (p_order->>'total_minor')::bigint,
                p_order->>'presentment_currency', (p_order->>'presentment_total_minor')::bigint,
                (p_order->>'ordered_at')::timestamptz, (p_order->>'updated_at')::timestamptz,
                coalesce(p_order->'hints', '{}'), (p_order->>'cancelled_at')::timestamptz,
                p_order->>'visitor_id', decode(p_order->>'checkout_key', 'hex'),
                decode(p_order->>'cart_key', 'hex'), decode(p_order->>'customer_key', 'hex'))
            ON CONFLICT (tenant_id, provider, store, external_order_id) DO UPDATE SET
                has_snapshot = true,
                currency = EXCLUDED.currency,
                total_minor = EXCLUDED.total_minor,
                presentment_currency = EXCLUDED.presentment_currency,
                presentment_total_minor = EXCLUDED.presentment_total_minor,
                ordered_at = EXCLUDED.ordered_at,
                source_updated_at = EXCLUDED.source_updated_at,
                -- Key by key: a newer snapshot wins for what it says, not for what it omits.
                hints = merged_hints(o.hints, EXCLUDED.hints),
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
                   -- Times have whole seconds (WooCommerce, Shopify): of two different snapshots
                   -- of one second the later to arrive wins; an identical one changes nothing.
                   OR (EXCLUDED.source_updated_at = o.source_updated_at
                       AND (o.has_snapshot, o.currency, o.total_minor, o.presentment_currency,
                           o.presentment_total_minor, o.ordered_at, o.source_updated_at, o.hints,
                           o.cancelled_at, o.visitor_id, o.checkout_key, o.cart_key, o.customer_key)
                          IS DISTINCT FROM
                          (true, EXCLUDED.currency, EXCLUDED.total_minor,
                           EXCLUDED.presentment_currency, EXCLUDED.presentment_total_minor,
                           EXCLUDED.ordered_at,
                           EXCLUDED.source_updated_at, merged_hints(o.hints, EXCLUDED.hints),
                           coalesce(EXCLUDED.cancelled_at, o.cancelled_at),
                           coalesce(EXCLUDED.visitor_id, o.visitor_id),
                           coalesce(EXCLUDED.checkout_key, o.checkout_key),
                           coalesce(EXCLUDED.cart_key, o.cart_key),
                           coalesce(EXCLUDED.customer_key, o.customer_key))))
              -- A re-parse leaves an order whose values did not change alone.
              AND (NOT p_reparse
                   OR (o.has_snapshot, o.currency, o.total_minor, o.presentment_currency,
                       o.presentment_total_minor, o.ordered_at, o.source_updated_at, o.hints,
                       o.cancelled_at, o.visitor_id, o.checkout_key, o.cart_key, o.customer_key)
                      IS DISTINCT FROM
                      (true, EXCLUDED.currency, EXCLUDED.total_minor, EXCLUDED.presentment_currency,
                       EXCLUDED.presentment_total_minor, EXCLUDED.ordered_at,
                       EXCLUDED.source_updated_at, merged_hints(o.hints, EXCLUDED.hints),
                       coalesce(EXCLUDED.cancelled_at, o.cancelled_at),
                       coalesce(EXCLUDED.visitor_id, o.visitor_id),
                       coalesce(EXCLUDED.checkout_key, o.checkout_key),
                       coalesce(EXCLUDED.cart_key, o.cart_key),
                       coalesce(EXCLUDED.customer_key, o.customer_key)))
            RETURNING o.order_id, o.version, o.cancelled_at, o.currency, o.total_minor,
                      o.presentment_currency, o.presentment_total_minor, o.customer_key,
                      o.is_new_customer
                INTO v_order, v_version, v_cancelled_at, v_currency, v_total,
                     v_presentment_currency, v_presentment_total, v_customer, v_was_new;
            v_snapshot_applied := v_order IS NOT NULL;
            v_snapshot_current := v_snapshot_applied;
            IF p_reparse AND NOT v_snapshot_applied THEN
                -- Unchanged, but possibly still the newest: its sale may need correcting.
                SELECT coalesce(o.source_updated_at IS NULL
                                OR (p_order->>'updated_at')::timestamptz >= o.source_updated_at,
                                false)
                    INTO v_snapshot_current FROM orders o
                WHERE o.tenant_id = p_tenant AND o.provider = p_provider AND o.store = v_store
                  AND o.external_order_id = p_order->>'external_order_id';
            END IF;
        END IF;

        IF v_order IS NULL THEN
            -- A refund can arrive before its order: keep a placeholder the order fills later.
            INSERT INTO orders AS o (tenant_id, provider, store, external_order_id, currency,
                ordered_at)
            VALUES (p_tenant, p_provider, v_store, p_order->>'external_order_id',
                    p_order->>'currency', (p_order->>'ordered_at')::timestamptz)
            ON CONFLICT (tenant_id, provider, store, external_order_id) DO NOTHING;
            -- Writers of one order take turns on its row before they write any entry (a
            -- snapshot's upsert above holds the same lock): a cancellation then sums every
            -- entry written before it, and a refund after it sees the cancellation. KEY SHARE
            -- (foreign key checks of other tables) still passes.
            SELECT o.order_id, o.version, o.cancelled_at, o.currency, o.total_minor,
                   o.presentment_currency, o.presentment_total_minor
                INTO v_order, v_version, v_cancelled_at, v_currency, v_total,
                     v_presentment_currency, v_presentment_total
            FROM orders o
            WHERE o.tenant_id = p_tenant AND o.provider = p_provider AND o.store = v_store
              AND o.external_order_id = p_order->>'external_order_id'
            FOR NO KEY UPDATE;
        END IF;

        -- A current snapshot replaces its sale entry: what it replaces is neither checked nor
        -- booked again below (a corrected currency changes the sale, not converts it).
        IF v_snapshot_current THEN
            SELECT coalesce(array_agg(x.external_id), '{}') INTO v_replaced_sales
            FROM jsonb_to_recordset(coalesce(p_entries, '[]')) AS x(external_id text, kind text)
            WHERE x.kind = 'sale';
        END IF;

        -- Every entry is booked in the order's currency (see amount_in_order_currency). An
        -- amount nothing converts is refused whole: the caller dead-letters the event.
        SELECT x.currency INTO v_unconvertible
        FROM jsonb_to_recordset(coalesce(p_entries, '[]')) AS x(amount_minor bigint, currency text)
        WHERE amount_in_order_currency(x.amount_minor, x.currency, v_currency, v_total,
                                       v_presentment_currency, v_presentment_total) IS NULL
        LIMIT 1;
        IF v_unconvertible IS NULL AND v_snapshot_applied THEN
            SELECT r.sent_currency INTO v_unconvertible FROM revenue_entries r
            WHERE r.tenant_id = p_tenant AND r.order_id = v_order AND r.kind <> 'cancellation'
              AND NOT (r.kind = 'sale' AND r.external_entry_id = ANY(v_replaced_sales))
              AND amount_in_order_currency(r.sent_amount_minor, r.sent_currency, v_currency,
                      v_total, v_presentment_currency, v_presentment_total) IS NULL
            LIMIT 1;
        END IF;
        IF v_unconvertible IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'SKC01',
                MESSAGE = format('an amount in %s cannot be booked in the order''s currency %s:'
                    ' the event gives no amount in %s and the order no presentment total in %s',
                    v_unconvertible, coalesce(v_currency, 'unknown'),
                    coalesce(v_currency, 'it'), v_unconvertible);
        END IF;
        IF v_snapshot_applied THEN
            -- The order's currency or its shop/presentment ratio may have changed: book its
            -- entries again from what their senders said.
            UPDATE revenue_entries r
            SET amount_minor = amount_in_order_currency(r.sent_amount_minor, r.sent_currency,
                    v_currency, v_total, v_presentment_currency, v_presentment_total),
                currency = v_currency
            WHERE r.tenant_id = p_tenant AND r.order_id = v_order AND r.kind <> 'cancellation'
              AND NOT (r.kind = 'sale' AND r.external_entry_id = ANY(v_replaced_sales))
              AND (r.currency IS DISTINCT FROM v_currency OR r.sent_currency <> v_currency)
              AND (r.amount_minor, r.currency) IS DISTINCT FROM
                  (amount_in_order_currency(r.sent_amount_minor, r.sent_currency, v_currency,
                       v_total, v_presentment_currency, v_presentment_total), v_currency);
            GET DIAGNOSTICS v_converted = ROW_COUNT;
        END IF;

        INSERT INTO revenue_entries AS r (tenant_id, order_id, provider, store, external_entry_id,
            kind, amount_minor, currency, sent_amount_minor, sent_currency, occurred_at, event_id)
        SELECT p_tenant, v_order, p_provider, v_store, x.external_id, x.kind,
               amount_in_order_currency(x.amount_minor, x.currency, v_currency, v_total,
                                        v_presentment_currency, v_presentment_total),
               v_currency, x.amount_minor, x.currency, x.occurred_at, p_event
        FROM jsonb_to_recordset(coalesce(p_entries, '[]')) AS x(
            external_id text, kind text, amount_minor bigint, currency text,
            occurred_at timestamptz)
        ON CONFLICT (tenant_id, provider, store, external_entry_id) DO UPDATE
            SET amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency,
                sent_amount_minor = EXCLUDED.sent_amount_minor,
                sent_currency = EXCLUDED.sent_currency
            -- An entry belongs to the order that booked it first; another order's event
            -- (the same id named under another order) never moves or rewrites it.
            WHERE r.order_id = v_order
              AND (r.amount_minor, r.currency, r.sent_amount_minor, r.sent_currency)
                  IS DISTINCT FROM (EXCLUDED.amount_minor, EXCLUDED.currency,
                                    EXCLUDED.sent_amount_minor, EXCLUDED.sent_currency)
              AND (
                -- An edited order changes its sale; only the newest snapshot may do that.
                (v_snapshot_current AND r.kind = 'sale' AND EXCLUDED.kind = 'sale')
                -- A re-parse corrects what this very event booked; a sale may have been edited
                -- by a newer snapshot since, so sales follow the rule above.
                OR (p_reparse AND r.event_id = p_event AND r.kind <> 'sale'
                    AND r.kind = EXCLUDED.kind));
        GET DIAGNOSTICS v_new_entries = ROW_COUNT;
        v_new_entries := v_new_entries + v_converted;

        -- A cancelled order nets to zero: its cancellation entry offsets everything else,
        -- including refunds that arrive after the cancellation.
        IF v_cancelled_at IS NOT NULL THEN
            SELECT coalesce(sum(r.amount_minor), 0) INTO v_other FROM revenue_entries r
            WHERE r.tenant_id = p_tenant AND r.order_id = v_order AND r.kind <> 'cancellation'
              AND r.currency = v_currency;
            INSERT INTO revenue_entries AS r (tenant_id, order_id, provider, store,
                external_entry_id, kind, amount_minor, currency, sent_amount_minor, sent_currency,
                occurred_at, event_id)
            VALUES (p_tenant, v_order, p_provider, v_store,
                    'cancel:' || (p_order->>'external_order_id'), 'cancellation', -v_other,
                    v_currency, -v_other, v_currency, v_cancelled_at, p_event)
            ON CONFLICT (tenant_id, provider, store, external_entry_id) DO UPDATE
                SET amount_minor = EXCLUDED.amount_minor, currency = EXCLUDED.currency,
                    sent_amount_minor = EXCLUDED.sent_amount_minor,
                    sent_currency = EXCLUDED.sent_currency
                WHERE (r.amount_minor, r.currency)
                      IS DISTINCT FROM (EXCLUDED.amount_minor, EXCLUDED.currency);
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

        IF v_snapshot_applied THEN
            -- The snapshot may have brought the order's customer or moved its time: settle
            -- the customer's new order (see settle_customer). An order that was the first of
            -- a customer under another key (its email edited) leaves that customer first.
            IF v_was_new THEN
                FOR v_left_customer IN
                    SELECT c.customer_key FROM customers c
                    WHERE c.tenant_id = p_tenant AND c.first_order_id = v_order
                      AND c.customer_key IS DISTINCT FROM v_customer
                LOOP
                    PERFORM settle_customer(p_tenant, v_left_customer, v_order);
                END LOOP;
            END IF;
            IF v_customer IS NOT NULL THEN
                PERFORM settle_customer(p_tenant, v_customer, v_order);
            END IF;
        END IF;

        INSERT INTO pending_orders AS p (tenant_id, order_id, order_version)
        VALUES (p_tenant, v_order, v_version)
        ON CONFLICT (tenant_id, order_id) DO UPDATE
            SET order_version = EXCLUDED.order_version, marked_at = now();

        -- Read after the mark is written: a chain that started before this read will find it.
        SELECT c.queued_at INTO v_queued FROM chain_state c WHERE c.tenant_id = p_tenant;
        RETURN QUERY SELECT v_order, true, (v_queued IS NULL OR v_queued < now() - p_stale);
    END ledger;
    SET CONSTRAINTS revenue_entries_order_currency IMMEDIATE;
    PERFORM set_config('app.tenant_id', v_caller_tenant, true);
END
$function$;
