-- The debounce: true for exactly one caller while no fresh chain is queued for the tenant.
-- Gives the caller its tenant context back.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.claim_chain(p_tenant uuid, p_stale interval)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
$function$;
