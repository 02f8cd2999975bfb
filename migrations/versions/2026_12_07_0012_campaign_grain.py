"""Campaign-grain attribution: a touchpoint's ad platform, each order's credits per campaign key,
and the daily roll-up of every model's credits per channel, platform, campaign, ad set and ad.

A touchpoint's campaign keys (utm_id, utm_campaign, the ad set and ad ids) stay in its hints;
its platform is classified by the channel rules, like its channel, and stored beside it (NULL:
not yet classified; the recompute classifies such touchpoints on first use, so no touchpoint is
rewritten here). An order's attribution row keeps its credits per grain key and the new-customer
flag they were rolled up with, so a recompute takes back exactly what it added even after the
flag changed. `orders.is_new_customer` is added only if absent: the customers work adds it too.
Every attributed order is marked pending, so the first recompute fills `campaign_daily`.

Revision ID: 20261207_0012
Revises: 20261207_0011
Create Date: 2026-12-07
"""

from alembic import context, op

revision = "20261207_0012"
down_revision = "20261207_0011"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE touchpoints ADD COLUMN platform text;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS is_new_customer boolean;
ALTER TABLE order_attributions
    ADD COLUMN grains text[],
    ADD COLUMN grain_credits bytea,
    ADD COLUMN is_new_customer boolean;

CREATE TABLE campaign_daily (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    model text NOT NULL,
    day date NOT NULL,
    currency char(3) NOT NULL,
    channel text NOT NULL,
    platform text NOT NULL,
    -- The touchpoint's utm_id, or '' when it had none.
    campaign_id text NOT NULL,
    -- The touchpoint's utm_campaign when it had no utm_id ('' otherwise); reads match it to the
    -- spend campaigns, so spend loaded later still finds the revenue it earned.
    utm_campaign text NOT NULL,
    adset_id text NOT NULL,
    ad_id text NOT NULL,
    revenue_minor bigint NOT NULL,
    refunds_minor bigint NOT NULL,
    net_minor bigint NOT NULL,
    -- Fractional credits in millionths of an order (of a new customer's order).
    orders_micro bigint NOT NULL,
    new_customers_micro bigint NOT NULL,
    new_customer_net_minor bigint NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model, day, currency, channel, platform, campaign_id, utm_campaign,
                 adset_id, ad_id)
);

ALTER TABLE campaign_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaign_daily
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The performance report finds a campaign's spend rows, its latest names, and a campaign by
-- the name a visit's utm_campaign gives, compared ignoring case. The lower-cased name is a
-- stored column because under row-level security a condition on lower(...) (not leakproof)
-- may not drive an index scan; an equality on a column may.
ALTER TABLE ad_spend ADD COLUMN campaign_name_key text
    GENERATED ALWAYS AS (lower(campaign_name)) STORED;
CREATE INDEX ad_spend_campaign ON ad_spend (tenant_id, platform, campaign_id, day);
CREATE INDEX ad_spend_campaign_name ON ad_spend (tenant_id, platform, campaign_name_key,
                                                 campaign_id);

INSERT INTO pending_orders (tenant_id, order_id, order_version)
SELECT o.tenant_id, o.order_id, o.version FROM orders o WHERE o.has_snapshot
ON CONFLICT (tenant_id, order_id) DO UPDATE SET generation = pending_orders.generation + 1,
    marked_at = now();
"""


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    # The recompute adds to it and takes back; a rebuild deletes and inserts.
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON campaign_daily TO "{runtime}"')
    # Classified again under new rules, as its channel is.
    op.execute(f'GRANT UPDATE (platform) ON touchpoints TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
