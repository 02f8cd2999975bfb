-- Many ingest_event calls in one round trip and one commit (the API's group commit): the
-- arguments as parallel arrays, called in order; the three documents of each event come as JSON
-- text, as an array of jsonb arrays would be read as a two-dimensional array.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.ingest_events(p_tenants uuid[], p_sources uuid[], p_providers text[], p_topics text[], p_dedupes text[], p_payloads text[], p_orders text[], p_entries text[], p_stale interval)
 RETURNS TABLE(ordinal integer, status text, event_id uuid, order_id uuid, needs_chain boolean)
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_tenants), 0) LOOP
        RETURN QUERY SELECT i, r.status, r.event_id, r.order_id, r.needs_chain
            FROM ingest_event(p_tenants[i], p_sources[i], p_providers[i], p_topics[i],
                              p_dedupes[i], p_payloads[i]::jsonb, p_orders[i]::jsonb,
                              p_entries[i]::jsonb, p_stale) AS r;
    END LOOP;
END
$function$;
