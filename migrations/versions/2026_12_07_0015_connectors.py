"""Spend connectors: a tenant's connected ad-platform accounts, their encrypted credentials,
status and backfill.

One row per (tenant, platform, account). The credentials are one JSON document encrypted with
the deployment's secret box (as webhook signing secrets are) and never read back by the API.
`status` is pending until the first pull, then ok, needs_reauth (the grant was revoked or
expired) or error. A backfill is its range and the next day to pull, so it resumes after a
crash. `connectors_to_pull()` lists the connectors for the scheduled pulls across tenants: like
every function that answers across tenants, only the worker role may call it.

Revision ID: 20261207_0015
Revises: 20261207_0014
Create Date: 2026-12-07
"""

from alembic import context, op
from sql_functions import load

revision = "20261207_0015"
down_revision = "20261207_0014"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE connectors (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    connector_id uuid NOT NULL,
    platform text NOT NULL CHECK (platform IN ('meta', 'google_ads', 'tiktok')),
    account_id text NOT NULL CHECK (length(account_id) BETWEEN 1 AND 200),
    credentials_ciphertext bytea NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'ok', 'needs_reauth', 'error')),
    last_error text CHECK (length(last_error) <= 2000),
    last_pull_at timestamptz,
    last_success_at timestamptz,
    backfill_start date,
    backfill_end date,
    backfill_next date,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, connector_id),
    UNIQUE (tenant_id, platform, account_id),
    CHECK (backfill_start <= backfill_end),
    CHECK (backfill_next IS NULL OR backfill_next BETWEEN backfill_start AND backfill_end)
);

ALTER TABLE connectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE connectors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON connectors
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    worker = context.config.attributes["worker_role"]
    op.execute(SCHEMA)
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON connectors TO "{runtime}"')
    load(op, "connectors_to_pull")
    op.execute("REVOKE ALL ON FUNCTION connectors_to_pull() FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION connectors_to_pull() TO "{worker}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
