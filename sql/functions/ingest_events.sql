-- Many deliveries, of any tenants, in one round trip and one commit (the API's group commit; a
-- lone delivery is a batch of one): the arguments as parallel arrays; the three documents of
-- each event come as JSON text, as an array of jsonb arrays would be read as two-dimensional.
--
-- Per tenant of the batch, set-based, as each statement costs far more to start than to run:
-- one statement stores its events (the first delivery of a dedupe key, unless stored before;
-- the rest are duplicates). One statement creates the orders that are new among them when each
-- is named once in the batch and brings a snapshot without a cancellation and entries that all
-- book in its currency; one books their entries, one marks them pending. What such an order
-- would meet in apply_event_to_ledger is empty (no entry to book again, no cancellation, no
-- customer it leaves), so the ledger ends the same. Every other stored event (an order stored
-- before, named twice in the batch, cancelled, or an amount nothing converts, which raises
-- SKC01) goes through apply_event_to_ledger in the batch's order, as a lone delivery would.
-- Rows are written in key order, so that concurrent batches take their locks in one order.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.ingest_events(p_tenants uuid[], p_sources uuid[], p_providers text[], p_topics text[], p_dedupes text[], p_payloads text[], p_orders text[], p_entries text[], p_stale interval)
 RETURNS TABLE(ordinal integer, status text, event_id uuid, order_id uuid, needs_chain boolean)
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
    v_caller_tenant text := coalesce(current_setting('app.tenant_id', true), '');
    v_tenant uuid;
    v_ordinals integer[];
    -- This tenant's stored events: their ordinals, and those of the new orders created at once.
    v_stored integer[];
    v_created integer[];
    v_ids uuid[];
    v_versions bigint[];
    -- Per ordinal of the whole batch.
    v_accepted boolean[] := '{}';
    v_events uuid[] := '{}';
    v_orders uuid[] := '{}';
    v_needs_chain boolean[] := '{}';
    v_queued timestamptz;
    v_order uuid;
    v_order_needs_chain boolean;
    v_row record;
    i integer;
BEGIN
    FOR v_tenant IN
        SELECT t.tenant FROM unnest(p_tenants) WITH ORDINALITY AS t(tenant, n)
        GROUP BY t.tenant ORDER BY min(t.n)
    LOOP
        PERFORM set_config('app.tenant_id', v_tenant::text, true);
        SELECT array_agg(n ORDER BY n) INTO v_ordinals
        FROM generate_subscripts(p_tenants, 1) AS n WHERE p_tenants[n] = v_tenant;

        WITH stored AS (
            INSERT INTO webhook_events AS e
                (tenant_id, source_id, provider, topic, dedupe_key, external_order_id, payload)
            SELECT v_tenant, p_sources[n], p_providers[n], p_topics[n], p_dedupes[n],
                   p_orders[n]::jsonb->>'external_order_id', p_payloads[n]::jsonb
            FROM unnest(v_ordinals) AS n
            ORDER BY p_providers[n], p_dedupes[n], n
            ON CONFLICT (tenant_id, provider, dedupe_key) DO NOTHING
            RETURNING e.provider, e.dedupe_key, e.event_id),
        firsts AS (
            SELECT DISTINCT ON (p_providers[n], p_dedupes[n]) n
            FROM unnest(v_ordinals) AS n
            ORDER BY p_providers[n], p_dedupes[n], n)
        SELECT array_agg(f.n ORDER BY f.n), array_agg(s.event_id ORDER BY f.n)
            INTO v_stored, v_ids
        FROM firsts f
        JOIN stored s ON s.provider = p_providers[f.n] AND s.dedupe_key = p_dedupes[f.n];
        FOR i IN 1 .. coalesce(cardinality(v_stored), 0) LOOP
            v_accepted[v_stored[i]] := true;
            v_events[v_stored[i]] := v_ids[i];
        END LOOP;
        FOR v_row IN
            SELECT n, e.event_id FROM unnest(v_ordinals) AS n
            JOIN webhook_events e ON e.tenant_id = v_tenant AND e.provider = p_providers[n]
                                 AND e.dedupe_key = p_dedupes[n]
            WHERE v_accepted[n] IS NULL
        LOOP
            v_accepted[v_row.n] := false;
            v_events[v_row.n] := v_row.event_id;
            v_needs_chain[v_row.n] := false;
        END LOOP;

        WITH documents AS (
            SELECT n, d.o, coalesce(d.o->>'store', '') AS store,
                   count(*) OVER (PARTITION BY p_providers[n], coalesce(d.o->>'store', ''),
                                  d.o->>'external_order_id') AS named
            FROM unnest(v_stored) AS n, LATERAL (SELECT p_orders[n]::jsonb AS o) AS d),
        new_orders AS (
            SELECT n, o, store FROM documents
            WHERE named = 1 AND (o->>'has_snapshot')::boolean AND o->>'cancelled_at' IS NULL
              AND (SELECT coalesce(bool_and(amount_in_order_currency(x.amount_minor,
                          x.currency, o->>'currency', (o->>'total_minor')::bigint,
                          o->>'presentment_currency', (o->>'presentment_total_minor')::bigint)
                      IS NOT NULL), true)
                      AND count(*) = count(DISTINCT x.external_id)
                   FROM jsonb_to_recordset(coalesce(p_entries[n]::jsonb, '[]'))
                       AS x(external_id text, amount_minor bigint, currency text))),
        created AS (
            INSERT INTO orders AS o (tenant_id, provider, store, external_order_id,
                has_snapshot, currency, total_minor, presentment_currency,
                presentment_total_minor, ordered_at, source_updated_at, hints, cancelled_at,
                visitor_id, checkout_key, cart_key, customer_key)
            SELECT v_tenant, p_providers[n], store, o->>'external_order_id', true,
                o->>'currency', (o->>'total_minor')::bigint, o->>'presentment_currency',
                (o->>'presentment_total_minor')::bigint, (o->>'ordered_at')::timestamptz,
                (o->>'updated_at')::timestamptz, coalesce(o->'hints', '{}'), NULL,
                o->>'visitor_id', decode(o->>'checkout_key', 'hex'),
                decode(o->>'cart_key', 'hex'), decode(o->>'customer_key', 'hex')
            FROM new_orders
            ORDER BY p_providers[n], store, o->>'external_order_id'
            ON CONFLICT (tenant_id, provider, store, external_order_id) DO NOTHING
            RETURNING o.provider, o.store, o.external_order_id, o.order_id, o.version)
        SELECT array_agg(w.n ORDER BY w.n), array_agg(c.order_id ORDER BY w.n),
               array_agg(c.version ORDER BY w.n)
            INTO v_created, v_ids, v_versions
        FROM new_orders w
        JOIN created c ON c.provider = p_providers[w.n] AND c.store = w.store
                      AND c.external_order_id = w.o->>'external_order_id';

        IF v_created IS NOT NULL THEN
            INSERT INTO revenue_entries AS r (tenant_id, order_id, provider, store,
                external_entry_id, kind, amount_minor, currency, sent_amount_minor,
                sent_currency, occurred_at, event_id)
            SELECT v_tenant, c.order_id, p_providers[c.n], coalesce(d.o->>'store', ''),
                   x.external_id, x.kind,
                   amount_in_order_currency(x.amount_minor, x.currency, d.o->>'currency',
                       (d.o->>'total_minor')::bigint, d.o->>'presentment_currency',
                       (d.o->>'presentment_total_minor')::bigint),
                   d.o->>'currency', x.amount_minor, x.currency, x.occurred_at,
                   v_events[c.n]
            FROM unnest(v_created, v_ids) AS c(n, order_id),
                 LATERAL (SELECT p_orders[c.n]::jsonb AS o) AS d,
                 jsonb_to_recordset(coalesce(p_entries[c.n]::jsonb, '[]')) AS x(
                     external_id text, kind text, amount_minor bigint, currency text,
                     occurred_at timestamptz)
            ORDER BY p_providers[c.n], coalesce(d.o->>'store', ''), x.external_id
            -- An entry belongs to the order that booked it first (apply_event_to_ledger).
            ON CONFLICT (tenant_id, provider, store, external_entry_id) DO NOTHING;

            -- The new order of a customer settles it (see settle_customer), in key order.
            FOR v_row IN
                SELECT c.order_id, decode(p_orders[c.n]::jsonb->>'customer_key', 'hex') AS customer
                FROM unnest(v_created, v_ids) AS c(n, order_id)
                WHERE p_orders[c.n]::jsonb->>'customer_key' IS NOT NULL
                ORDER BY 2, 1
            LOOP
                PERFORM settle_customer(v_tenant, v_row.customer, v_row.order_id);
            END LOOP;

            INSERT INTO pending_orders AS p (tenant_id, order_id, order_version)
            SELECT v_tenant, c.order_id, c.version
            FROM unnest(v_ids, v_versions) AS c(order_id, version)
            ORDER BY c.order_id
            ON CONFLICT (tenant_id, order_id) DO UPDATE
                SET order_version = EXCLUDED.order_version, marked_at = now();

            -- Read after the marks are written: a chain that started before will find them.
            SELECT c.queued_at INTO v_queued FROM chain_state c WHERE c.tenant_id = v_tenant;
            FOR i IN 1 .. cardinality(v_created) LOOP
                v_orders[v_created[i]] := v_ids[i];
                v_needs_chain[v_created[i]] := v_queued IS NULL OR v_queued < now() - p_stale;
            END LOOP;
        END IF;

        FOR v_row IN
            SELECT n FROM unnest(v_stored) AS n
            WHERE n <> ALL (coalesce(v_created, '{}')) ORDER BY n
        LOOP
            SELECT a.order_id, a.needs_chain INTO v_order, v_order_needs_chain
            FROM apply_event_to_ledger(v_tenant, p_providers[v_row.n], v_events[v_row.n],
                                       p_orders[v_row.n]::jsonb, p_entries[v_row.n]::jsonb,
                                       p_stale, false) AS a;
            v_orders[v_row.n] := v_order;
            v_needs_chain[v_row.n] := v_order_needs_chain;
        END LOOP;
    END LOOP;
    PERFORM set_config('app.tenant_id', v_caller_tenant, true);

    RETURN QUERY
        SELECT n, CASE WHEN v_accepted[n] THEN 'accepted' ELSE 'duplicate' END,
               v_events[n], v_orders[n], coalesce(v_needs_chain[n], false)
        FROM generate_subscripts(p_tenants, 1) AS n
        ORDER BY n;
END
$function$;
