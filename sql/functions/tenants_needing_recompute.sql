-- For the sweeper, which serves every tenant: tenant ids only, never their rows. Any kind of
-- work left marked (orders to attribute, orders the reports have not counted) and no fresh
-- chain queued: a lost message, a killed worker or a task that gave up leaves such marks.
-- Only the worker role may execute it (the API has no use for a list of tenants).
CREATE OR REPLACE FUNCTION public.tenants_needing_recompute(p_grace interval, p_stale interval)
 RETURNS SETOF uuid
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT w.tenant_id
    FROM (SELECT p.tenant_id FROM public.pending_orders p WHERE p.marked_at < now() - p_grace
          UNION
          SELECT d.tenant_id FROM public.report_dirty_orders d
          WHERE d.marked_at < now() - p_grace) AS w
    LEFT JOIN public.chain_state c ON c.tenant_id = w.tenant_id
    WHERE c.queued_at IS NULL OR c.queued_at < now() - p_stale
$function$;
