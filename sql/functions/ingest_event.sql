-- The whole ingest in one round trip: tenant context first, then the event insert with
-- dedupe, then the ledger. Runs as the caller, under RLS; the webhook hot path.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.ingest_event(p_tenant uuid, p_source uuid, p_provider text, p_topic text, p_dedupe text, p_payload jsonb, p_order jsonb, p_entries jsonb, p_stale interval)
 RETURNS TABLE(status text, event_id uuid, order_id uuid, needs_chain boolean)
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
$function$;
