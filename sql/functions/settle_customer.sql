-- Settle one customer of the tenant after one of its orders changed (p_order, which the caller
-- marks pending itself): its first order is the earliest by (ordered_at, order_id), found by one
-- lookup of the orders_customer_first index; that order is the customer's new one and every
-- other order of the customer is not. The customer's row is locked first, so writers of one
-- customer take turns and each reads the orders the ones before it committed: two first
-- orders arriving at once still end with exactly one new. Orders whose flag flipped are
-- marked pending, so their reports move. A customer left with no order loses its row.
-- Runs as the caller, under RLS, in the caller's tenant context.
-- The runtime role may execute it.
CREATE OR REPLACE FUNCTION public.settle_customer(p_tenant uuid, p_customer bytea, p_order uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
    v_old_first uuid;
    v_first uuid;
    v_first_at timestamptz;
    v_flipped uuid[];
BEGIN
    -- A new customer's row is right as inserted: its first order is this one.
    INSERT INTO customers AS c (tenant_id, customer_key, first_order_id, first_ordered_at)
    SELECT p_tenant, p_customer, o.order_id, o.ordered_at FROM orders o
    WHERE o.tenant_id = p_tenant AND o.order_id = p_order
    ON CONFLICT (tenant_id, customer_key) DO NOTHING;
    SELECT c.first_order_id INTO v_old_first FROM customers c
    WHERE c.tenant_id = p_tenant AND c.customer_key = p_customer
    FOR UPDATE;

    SELECT o.order_id, o.ordered_at INTO v_first, v_first_at FROM orders o
    WHERE o.tenant_id = p_tenant AND o.customer_key = p_customer
    ORDER BY o.ordered_at, o.order_id
    LIMIT 1;

    IF v_first IS NULL THEN
        DELETE FROM customers c WHERE c.tenant_id = p_tenant AND c.customer_key = p_customer;
    ELSE
        UPDATE customers c SET first_order_id = v_first, first_ordered_at = v_first_at
        WHERE c.tenant_id = p_tenant AND c.customer_key = p_customer
          AND (c.first_order_id, c.first_ordered_at) IS DISTINCT FROM (v_first, v_first_at);
    END IF;

    -- Only these can have a flag to change: the order that changed, the first before, the
    -- first now (every other order of the customer already says false).
    WITH flipped AS (
        UPDATE orders o SET is_new_customer = (o.order_id = v_first)
        WHERE o.tenant_id = p_tenant AND o.order_id IN (p_order, v_old_first, v_first)
          AND o.customer_key = p_customer
          AND o.is_new_customer IS DISTINCT FROM (o.order_id = v_first)
        RETURNING o.order_id)
    SELECT array_agg(f.order_id) INTO v_flipped FROM flipped f WHERE f.order_id <> p_order;
    IF v_flipped IS NOT NULL THEN
        PERFORM mark_orders_pending(p_tenant, v_flipped);
    END IF;
END
$function$;
