-- An order erased on request stays erased: a later delivery of it (orders/updated, a refund)
-- brings its stitch keys, visitor id and landing hints again, and this trigger drops them
-- before they are written, and replaces the payload copy the delivery just stored (the event
-- is inserted before the ledger updates the order). Runs only for redacted rows (the
-- trigger's WHEN clause).
-- A trigger function: nobody calls it directly.
CREATE OR REPLACE FUNCTION public.keep_redacted_orders_redacted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY INVOKER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    NEW.redacted_at := OLD.redacted_at;
    NEW.visitor_id := NULL;
    NEW.checkout_key := NULL;
    NEW.cart_key := NULL;
    NEW.customer_key := NULL;
    NEW.hints := '{}'::jsonb;
    UPDATE public.webhook_events SET payload = '{"redacted": true}'::jsonb
    WHERE tenant_id = NEW.tenant_id AND provider = NEW.provider
      AND external_order_id = NEW.external_order_id
      AND payload <> '{"redacted": true}'::jsonb;
    RETURN NEW;
END
$function$;
