-- The tenant key route (X-Skeldir-Tenant-Key): the tenant's oldest enabled source for a
-- provider, looked up as resolve_source is.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.resolve_source_by_key(p_tenant uuid, p_key_hash bytea, p_provider text)
 RETURNS TABLE(source_id uuid, provider text, settings jsonb, secrets bytea[], stitch_key bytea)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT s.source_id, s.provider, s.settings,
           coalesce(array_agg(k.ciphertext ORDER BY k.created_at DESC)
                    FILTER (WHERE k.secret_id IS NOT NULL), '{}'),
           t.stitch_key_ciphertext
    FROM public.api_keys a
    JOIN public.tenants t ON t.tenant_id = a.tenant_id
    JOIN LATERAL (
        SELECT * FROM public.webhook_sources w
        WHERE w.tenant_id = a.tenant_id AND w.provider = p_provider AND w.disabled_at IS NULL
        ORDER BY w.created_at, w.source_id LIMIT 1
    ) s ON true
    LEFT JOIN public.webhook_source_secrets k
           ON k.tenant_id = s.tenant_id AND k.source_id = s.source_id
          AND (k.retired_at IS NULL OR k.retired_at > now())
    WHERE a.tenant_id = p_tenant AND a.key_hash = p_key_hash AND a.scope = 'webhook'
      AND a.revoked_at IS NULL
    GROUP BY s.source_id, s.provider, s.settings, s.created_at, t.stitch_key_ciphertext
$function$;
