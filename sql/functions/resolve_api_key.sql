-- Lookups before any tenant context run as the owner with a fixed search_path and answer
-- for one (tenant, credential hash) pair only.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.resolve_api_key(p_tenant uuid, p_key_hash bytea)
 RETURNS TABLE(key_id uuid, scope text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT key_id, scope FROM public.api_keys
    WHERE tenant_id = p_tenant AND key_hash = p_key_hash AND revoked_at IS NULL
$function$;
