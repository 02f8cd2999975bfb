-- For the daily retention run, which serves every tenant: each tenant's id and its retention
-- periods, never its rows; tenants being deleted are left to the deletion.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.tenants_for_retention()
 RETURNS TABLE(tenant_id uuid, touchpoint_days integer, payload_days integer, dead_letter_days integer)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT t.tenant_id, t.retention_touchpoint_days, t.retention_payload_days,
           t.retention_dead_letter_days
    FROM public.tenants t
    WHERE t.deleting_at IS NULL
    ORDER BY t.tenant_id
$function$;
