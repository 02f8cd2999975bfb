"""Ledger integrity: functions that give the caller its tenant back.

`set_config('app.tenant_id', ..., true)` lasts to the end of the caller's transaction, not of
the function. Every function that sets the tenant for its own body now reads the caller's
setting first and puts it back at its one exit, so a caller continues under its own context
(or none). An error needs no restore: it aborts the transaction, or rolls back the savepoint
that holds the setting. (A `SET app.tenant_id` clause on the function would restore it too, but
attaching a clause for a custom parameter needs a superuser's `GRANT SET ON PARAMETER`, which a
managed PostgreSQL may not give.)

Every entry of an order is booked in the order's currency. An amount the sender gives in the
order's presentment currency (a Shopify refund paid out in the buyer's currency) is converted by
the order's own shop/presentment ratio; what nothing converts is refused (SQLSTATE SKC01) and
the caller dead-letters the event. A foreign key on (order, currency) makes the rule the
database's: amounts of different currencies can no longer meet in one order's sums.

Where a platform numbers its orders per store (WooCommerce), an order's identity includes its
store, the webhook source it came from (`orders.store`, '' where ids span every store of the
platform); an entry's identity follows its order's.

An order's attribution hints are merged key by key (`merged_hints`): a newer snapshot that
omits them (an update without `attribution`) no longer erases the earlier ones.

Writers of one order are serialized: every path through `apply_event_to_ledger` locks the
order's row before it writes an entry (a refund used to write its entry first, so a concurrent
cancellation summed without it and the cancelled order kept revenue).

Revision ID: 20261207_0008
Revises: 20261126_0007
Create Date: 2026-12-07
"""

from alembic import context, op

revision = "20261207_0008"
down_revision = "20261126_0007"
branch_labels = None
depends_on = None

SCHEMA = r"""
-- What the sender said of each entry; amount_minor and currency are the entry as booked, in
-- its order's currency (the same unless the sender paid out in another currency).
ALTER TABLE revenue_entries
    ADD COLUMN sent_amount_minor bigint,
    ADD COLUMN sent_currency char(3);
UPDATE revenue_entries SET sent_amount_minor = amount_minor, sent_currency = currency;
ALTER TABLE revenue_entries
    ALTER COLUMN sent_amount_minor SET NOT NULL,
    ALTER COLUMN sent_currency SET NOT NULL;

-- An amount in minor units of p_currency, in minor units of the order's currency: as is when
-- they agree, else by the order's own shop/presentment ratio when p_currency is its presentment
-- currency; NULL when nothing converts it (never a guessed rate, never 1:1).
CREATE FUNCTION amount_in_order_currency(
    p_amount bigint, p_currency text, p_order_currency text, p_order_total bigint,
    p_presentment_currency text, p_presentment_total bigint
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN p_currency = p_order_currency THEN p_amount
        WHEN p_currency = p_presentment_currency AND p_presentment_total > 0
             AND p_order_total IS NOT NULL
            -- numeric round: half away from zero, so a refund mirrors its sale exactly.
            THEN round(p_amount::numeric * p_order_total / p_presentment_total)::bigint
    END
$$;

-- Entries booked before this revision in another currency than their order's.
UPDATE revenue_entries r
SET amount_minor = amount_in_order_currency(r.sent_amount_minor, r.sent_currency, o.currency,
        o.total_minor, o.presentment_currency, o.presentment_total_minor),
    currency = o.currency
FROM orders o
WHERE o.tenant_id = r.tenant_id AND o.order_id = r.order_id AND r.kind <> 'cancellation'
  AND r.currency <> o.currency
  AND amount_in_order_currency(r.sent_amount_minor, r.sent_currency, o.currency, o.total_minor,
        o.presentment_currency, o.presentment_total_minor) IS NOT NULL;
UPDATE revenue_entries c
SET amount_minor = -rest.amount, sent_amount_minor = -rest.amount,
    currency = rest.currency, sent_currency = rest.currency
FROM (SELECT r.tenant_id, r.order_id, o.currency, sum(r.amount_minor) AS amount
      FROM revenue_entries r JOIN orders o USING (tenant_id, order_id)
      WHERE o.cancelled_at IS NOT NULL AND r.kind <> 'cancellation' AND r.currency = o.currency
      GROUP BY r.tenant_id, r.order_id, o.currency) AS rest
WHERE c.tenant_id = rest.tenant_id AND c.order_id = rest.order_id AND c.kind = 'cancellation'
  AND (c.amount_minor, c.currency) IS DISTINCT FROM (-rest.amount, rest.currency);
-- Orders whose entries changed are attributed again.
INSERT INTO pending_orders (tenant_id, order_id, order_version)
SELECT DISTINCT o.tenant_id, o.order_id, o.version
FROM orders o JOIN revenue_entries r USING (tenant_id, order_id)
WHERE r.currency <> r.sent_currency
ON CONFLICT (tenant_id, order_id) DO UPDATE SET marked_at = now();

-- The guard: an entry's currency is its order's. Deferrable, so a snapshot that changes the
-- order's currency can book the order's entries again before the guard is checked.
ALTER TABLE orders ADD CONSTRAINT orders_order_currency UNIQUE (tenant_id, order_id, currency);
ALTER TABLE revenue_entries
    ADD CONSTRAINT revenue_entries_order_currency FOREIGN KEY (tenant_id, order_id, currency)
        REFERENCES orders (tenant_id, order_id, currency) ON DELETE CASCADE
        DEFERRABLE INITIALLY IMMEDIATE NOT VALID,
    -- Implied by the guard; one foreign key check per entry is enough.
    DROP CONSTRAINT revenue_entries_tenant_id_order_id_fkey;
-- Where a platform numbers orders per store (WooCommerce: every shop starts at 1), an order's
-- identity includes its store: the webhook source it comes from. '' where ids span stores.
ALTER TABLE orders ADD COLUMN store text NOT NULL DEFAULT '';
ALTER TABLE revenue_entries ADD COLUMN store text NOT NULL DEFAULT '';
UPDATE orders o SET store = s.store
FROM (SELECT DISTINCT ON (e.tenant_id, e.external_order_id) e.tenant_id, e.external_order_id,
             e.source_id::text AS store
      FROM webhook_events e WHERE e.provider = 'woocommerce'
      ORDER BY e.tenant_id, e.external_order_id, e.received_at) AS s
WHERE o.provider = 'woocommerce' AND o.tenant_id = s.tenant_id
  AND o.external_order_id = s.external_order_id;
UPDATE revenue_entries r SET store = o.store
FROM orders o WHERE o.tenant_id = r.tenant_id AND o.order_id = r.order_id AND o.store <> '';
-- The store last: a lookup by order id alone (the read API) still uses the key's index.
ALTER TABLE orders
    ADD CONSTRAINT orders_store_order UNIQUE (tenant_id, provider, external_order_id, store),
    DROP CONSTRAINT orders_tenant_id_provider_external_order_id_key;
ALTER TABLE revenue_entries
    ADD CONSTRAINT revenue_entries_store_entry
        UNIQUE (tenant_id, provider, external_entry_id, store),
    DROP CONSTRAINT revenue_entries_tenant_id_provider_external_entry_id_key;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM revenue_entries r JOIN orders o USING (tenant_id, order_id)
                   WHERE r.currency IS DISTINCT FROM o.currency) THEN
        ALTER TABLE revenue_entries VALIDATE CONSTRAINT revenue_entries_order_currency;
    ELSE
        RAISE WARNING 'revenue entries in another currency than their order''s and no way to'
            ' convert them: the guard holds for new entries only';
    END IF;
END
$$;
"""

HINT_FUNCTIONS = r"""
-- An order's attribution hints after a newer snapshot: each text field the newer one gives
-- (not null) replaces the kept one, and each click id it gives (by name) replaces the kept one
-- of that name; what it leaves out is kept. The one rule for every provider.
CREATE FUNCTION merged_hints(p_kept jsonb, p_newer jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (coalesce(p_kept, '{}') - 'click_ids')
        || (jsonb_strip_nulls(coalesce(p_newer, '{}')) - 'click_ids')
        || jsonb_build_object('click_ids', coalesce(
            (SELECT jsonb_agg(jsonb_build_array(c.name, c.value) ORDER BY c.name)
             FROM (SELECT DISTINCT ON (pair->>0) pair->>0 AS name, pair->>1 AS value
                   FROM (SELECT pair, 0 AS precedence
                         FROM jsonb_array_elements(coalesce(p_newer->'click_ids', '[]')) AS pair
                         UNION ALL
                         SELECT pair, 1
                         FROM jsonb_array_elements(coalesce(p_kept->'click_ids', '[]')) AS pair
                        ) AS given
                   ORDER BY pair->>0, precedence) AS c),
            '[]'))
$$;
"""

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
    v_total bigint;
    v_presentment_currency text;
    v_presentment_total bigint;
    v_unconvertible text;
    v_converted integer := 0;
    v_replaced_sales text[] := '{}';
    v_changed_cancellation integer := 0;
    v_queued timestamptz;
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
                      o.presentment_currency, o.presentment_total_minor
                INTO v_order, v_version, v_cancelled_at, v_currency, v_total,
                     v_presentment_currency, v_presentment_total;
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
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    signature = "amount_in_order_currency(bigint, text, text, bigint, text, bigint)"
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{runtime}"')
    op.execute(HINT_FUNCTIONS)
    op.execute('REVOKE ALL ON FUNCTION merged_hints(jsonb, jsonb) FROM PUBLIC')
    op.execute(f'GRANT EXECUTE ON FUNCTION merged_hints(jsonb, jsonb) TO "{runtime}"')
    # CREATE OR REPLACE keeps the grants made when the functions were created.
    op.execute(TENANT_SCOPED_FUNCTIONS)


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
