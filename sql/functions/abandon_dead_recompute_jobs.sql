-- Jobs whose row says running but whose advisory lock (held by a live run on a session of its
-- own; the same two-integer key as skeldir.domains.attribution.jobs.job_lock_key) is free: their
-- worker died. One tenant's, or every tenant's for the sweeper (NULL); a count, never a row.
-- Only the worker role may execute it (the API has no use for a list of tenants).
CREATE OR REPLACE FUNCTION public.abandon_dead_recompute_jobs(p_tenant uuid)
 RETURNS integer
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    WITH running AS MATERIALIZED (
        SELECT j.tenant_id, j.job_id, replace(j.job_id::text, '-', '') AS hex
        FROM public.recompute_jobs j
        WHERE j.status = 'running' AND (p_tenant IS NULL OR j.tenant_id = p_tenant)
    ), dead AS MATERIALIZED (
        SELECT r.tenant_id, r.job_id FROM running r
        WHERE pg_try_advisory_xact_lock(('x' || substr(r.hex, 1, 8))::bit(32)::integer,
                                        ('x' || substr(r.hex, 9, 8))::bit(32)::integer)
    ), abandoned AS (
        UPDATE public.recompute_jobs j
        SET status = 'abandoned', finished_at = now(),
            error = 'the worker running this job stopped before it finished'
        FROM dead d
        WHERE j.tenant_id = d.tenant_id AND j.job_id = d.job_id AND j.status = 'running'
        RETURNING 1)
    SELECT count(*)::integer FROM abandoned
$function$;
