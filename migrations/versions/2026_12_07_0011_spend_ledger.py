"""The spend ledger: a tenant's ad spend per day, platform, account, campaign, ad set and ad.

Platforms restate recent days, so a row is keyed by what it describes and loading the same key
again replaces its figures. An ad set or ad that a platform does not report is '' rather than
NULL, so the key stays a plain primary key. Spend is kept in minor units of its own currency;
reports convert it at the day's rate from fx_rates, as they do revenue.

Revision ID: 20261207_0011
Revises: 20261207_0010
Create Date: 2026-12-07
"""

from alembic import context, op

revision = "20261207_0011"
down_revision = "20261207_0010"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE ad_spend (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    day date NOT NULL,
    platform text NOT NULL
        CHECK (platform IN ('meta', 'google_ads', 'tiktok', 'microsoft_ads', 'other')),
    account_id text NOT NULL CHECK (length(account_id) BETWEEN 1 AND 200),
    campaign_id text NOT NULL CHECK (length(campaign_id) BETWEEN 1 AND 200),
    adset_id text NOT NULL DEFAULT '' CHECK (length(adset_id) <= 200),
    ad_id text NOT NULL DEFAULT '' CHECK (length(ad_id) <= 200),
    campaign_name text NOT NULL DEFAULT '' CHECK (length(campaign_name) <= 500),
    adset_name text NOT NULL DEFAULT '' CHECK (length(adset_name) <= 500),
    ad_name text NOT NULL DEFAULT '' CHECK (length(ad_name) <= 500),
    currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    spend_minor bigint NOT NULL CHECK (spend_minor >= 0),
    impressions bigint NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    clicks bigint NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day, platform, account_id, campaign_id, adset_id, ad_id)
);

ALTER TABLE ad_spend ENABLE ROW LEVEL SECURITY;
ALTER TABLE ad_spend FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ad_spend
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    # A restatement replaces a row's figures (INSERT ... ON CONFLICT DO UPDATE).
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ad_spend TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
