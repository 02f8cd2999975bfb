"""Customers: each order says whether it is its customer's first (new) order in the tenant.

An order's customer is its customer_key (the keyed digest of its email, else of the platform's
customer id). `orders.is_new_customer` is true for the customer's first order by
(ordered_at, order_id), false for its other orders, NULL for an order without a customer.
`customers` keeps, per tenant and customer, its first order: ingest locks that row, so writers
of one customer take turns, and finds the first order by one lookup of the
orders_customer_first index (see sql/functions/settle_customer.sql). The column is added with
IF NOT EXISTS: the campaign rollup's migration may have added it first.

Existing orders are backfilled here; they are not marked pending (their credits do not change:
the flag is read by the reports that count new customers, which are built from it).

Revision ID: 20261207_0013
Revises: 20261207_0012
Create Date: 2026-12-07
"""

from alembic import context, op
from sql_functions import load

revision = "20261207_0013"
down_revision = "20261207_0012"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE orders ADD COLUMN IF NOT EXISTS is_new_customer boolean;

-- A customer's orders in order time: its first is one descent. It serves what orders_customer
-- served (stitching by customer key), so that one goes.
CREATE INDEX orders_customer_first ON orders (tenant_id, customer_key, ordered_at, order_id)
    WHERE customer_key IS NOT NULL;
DROP INDEX orders_customer;

-- Written on every webhook that names a customer: no foreign key to tenants (see the
-- foundation migration), nor to orders (settling keeps first_order_id an order of its own).
CREATE TABLE customers (
    tenant_id uuid NOT NULL,
    customer_key bytea NOT NULL,
    first_order_id uuid NOT NULL,
    -- As the order's ordered_at, which a stored snapshot always has.
    first_ordered_at timestamptz,
    PRIMARY KEY (tenant_id, customer_key)
);
-- An order whose customer key changes finds the customer it was first of.
CREATE INDEX customers_first_order ON customers (tenant_id, first_order_id);

ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON customers
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""

BACKFILL = r"""
INSERT INTO customers (tenant_id, customer_key, first_order_id, first_ordered_at)
SELECT DISTINCT ON (o.tenant_id, o.customer_key) o.tenant_id, o.customer_key, o.order_id,
       o.ordered_at
FROM orders o
WHERE o.customer_key IS NOT NULL
ORDER BY o.tenant_id, o.customer_key, o.ordered_at, o.order_id
-- The table is new here; a customer already settled (a test running this again) stays.
ON CONFLICT (tenant_id, customer_key) DO NOTHING;

UPDATE orders o SET is_new_customer = (o.order_id = c.first_order_id)
FROM customers c
WHERE c.tenant_id = o.tenant_id AND c.customer_key = o.customer_key
  AND o.is_new_customer IS DISTINCT FROM (o.order_id = c.first_order_id);
"""

RUNTIME_FUNCTIONS = ("settle_customer(uuid, bytea, uuid)",)


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    op.execute(BACKFILL)
    # Ingest locks, inserts, settles and (a customer left without orders) deletes its row.
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON customers TO "{runtime}"')
    load(op, "settle_customer")
    load(op, "apply_event_to_ledger")
    for signature in RUNTIME_FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
