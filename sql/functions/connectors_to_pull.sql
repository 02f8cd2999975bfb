-- For the scheduled pulls, which serve every tenant: each connector's ids, platform, status,
-- last success and whether a backfill is unfinished; never its credentials or its account.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.connectors_to_pull()
 RETURNS TABLE(tenant_id uuid, connector_id uuid, platform text, status text, last_success_at timestamp with time zone, backfill_pending boolean)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT c.tenant_id, c.connector_id, c.platform, c.status, c.last_success_at,
           c.backfill_next IS NOT NULL
    FROM public.connectors c
    ORDER BY c.tenant_id, c.connector_id
$function$;
