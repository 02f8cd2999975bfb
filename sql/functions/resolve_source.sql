-- Source lookup happens before any tenant context exists, so it runs as the owner with a
-- fixed search_path, answers for one (tenant, token hash) pair only, and returns secrets still
-- encrypted, with the tenant's stitch key (encrypted) so the edge can turn an order's tokens
-- into stitch keys without another round trip.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.resolve_source(p_tenant uuid, p_token_hash bytea)
 RETURNS TABLE(source_id uuid, provider text, settings jsonb, secrets bytea[], stitch_key bytea)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT s.source_id, s.provider, s.settings,
           coalesce(array_agg(k.ciphertext ORDER BY k.created_at DESC)
                    FILTER (WHERE k.secret_id IS NOT NULL), '{}'),
           t.stitch_key_ciphertext
    FROM public.webhook_sources s
    JOIN public.tenants t ON t.tenant_id = s.tenant_id
    LEFT JOIN public.webhook_source_secrets k
           ON k.tenant_id = s.tenant_id AND k.source_id = s.source_id
          AND (k.retired_at IS NULL OR k.retired_at > now())
    WHERE s.tenant_id = p_tenant AND s.token_hash = p_token_hash AND s.disabled_at IS NULL
    GROUP BY s.source_id, s.provider, s.settings, t.stitch_key_ciphertext
$function$;
