-- The int64 at a given index of packed credits (order_attributions.credits: big-endian
-- int64 minor units).
CREATE OR REPLACE FUNCTION public.credit_minor(credits bytea, index integer)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
    SELECT ('x' || encode(substring(credits FROM index * 8 + 1 FOR 8), 'hex'))::bit(64)::bigint
$function$;
