-- For the scheduled learner, which serves every tenant: tenant ids only, never their rows;
-- only tenants with touchpoints received in the learner's own 30-day window, whatever p_since
-- asks (it can only narrow it).
-- Only the worker role may execute it (the API has no use for a list of tenants).
CREATE OR REPLACE FUNCTION public.tenants_with_touchpoints(p_since timestamp with time zone)
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT t.tenant_id FROM public.tenants t
    WHERE EXISTS (SELECT 1 FROM public.touchpoints p
                  WHERE p.tenant_id = t.tenant_id
                    AND p.occurred_at >= greatest(p_since, now() - interval '30 days')
                    AND p.received_at >= now() - interval '30 days')
$function$;
