-- Mark the tenant's orders pending as they stand (late touchpoint, re-attribution, new rate).
-- A mark already there gets a new generation, so a batch that read the old one keeps it.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.mark_orders_pending(p_tenant uuid, p_orders uuid[])
 RETURNS integer
 LANGUAGE sql
 SET search_path TO 'public', 'pg_temp'
AS $function$
    WITH marked AS (
        INSERT INTO pending_orders AS p (tenant_id, order_id, order_version)
        SELECT o.tenant_id, o.order_id, o.version FROM orders o
        WHERE o.tenant_id = p_tenant AND o.order_id = ANY(p_orders)
        ON CONFLICT (tenant_id, order_id) DO UPDATE
            SET generation = p.generation + 1, marked_at = now()
        RETURNING 1)
    SELECT count(*)::integer FROM marked
$function$;
