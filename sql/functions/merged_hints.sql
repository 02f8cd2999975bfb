-- An order's attribution hints after a newer snapshot: each text field the newer one gives
-- (not null) replaces the kept one, and each click id it gives (by name) replaces the kept one
-- of that name; what it leaves out is kept. The one rule for every provider.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.merged_hints(p_kept jsonb, p_newer jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT (coalesce(p_kept, '{}') - 'click_ids')
        || (jsonb_strip_nulls(coalesce(p_newer, '{}')) - 'click_ids')
        || jsonb_build_object('click_ids', coalesce(
            (SELECT jsonb_agg(jsonb_build_array(c.name, c.value) ORDER BY c.name)
             FROM (SELECT DISTINCT ON (pair->>0) pair->>0 AS name, pair->>1 AS value
                   FROM (SELECT pair, 0 AS precedence
                         FROM jsonb_array_elements(coalesce(p_newer->'click_ids', '[]')) AS pair
                         UNION ALL
                         SELECT pair, 1
                         FROM jsonb_array_elements(coalesce(p_kept->'click_ids', '[]')) AS pair
                        ) AS given
                   ORDER BY pair->>0, precedence) AS c),
            '[]'))
$function$;
