-- An amount in minor units of p_currency, in minor units of the order's currency: as is when
-- they agree, else by the order's own shop/presentment ratio when p_currency is its presentment
-- currency; NULL when nothing converts it (never a guessed rate, never 1:1).
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.amount_in_order_currency(p_amount bigint, p_currency text, p_order_currency text, p_order_total bigint, p_presentment_currency text, p_presentment_total bigint)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT CASE
        WHEN p_currency = p_order_currency THEN p_amount
        WHEN p_currency = p_presentment_currency AND p_presentment_total > 0
             AND p_order_total IS NOT NULL
            -- numeric round: half away from zero, so a refund mirrors its sale exactly.
            THEN round(p_amount::numeric * p_order_total / p_presentment_total)::bigint
    END
$function$;
