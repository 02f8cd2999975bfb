"""API keys managed by tenants themselves, and an audit log of every API request.

The runtime role may now create keys and revoke them for the tenant in context (an admin key
does it over the API); it can read every column but the hash. Each authenticated API request
leaves one audit row: which key, when, which route and with what outcome. The row holds the
route template and the path parameters (ids), never bodies or query values, so it carries no
personal data.

Revision ID: 20261126_0005
Revises: 20261125_0004
Create Date: 2026-11-26
"""

from alembic import context, op

revision = "20261126_0005"
down_revision = "20261125_0004"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE audit_log (
    tenant_id uuid NOT NULL,
    audit_id bigint GENERATED ALWAYS AS IDENTITY,
    at timestamptz NOT NULL DEFAULT now(),
    key_id uuid NOT NULL,
    scope text NOT NULL,
    method text NOT NULL,
    route text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}',
    status smallint NOT NULL,
    duration_ms integer NOT NULL,
    PRIMARY KEY (tenant_id, audit_id)
);
CREATE INDEX audit_log_at ON audit_log (tenant_id, at);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    op.execute(SCHEMA)
    op.execute(f'GRANT SELECT, INSERT ON audit_log TO "{runtime}"')
    # Every column but key_hash: a key's hash never leaves the database.
    op.execute(
        "GRANT SELECT (tenant_id, key_id, scope, label, created_at, revoked_at),"
        " INSERT (tenant_id, key_id, key_hash, scope, label),"
        f' UPDATE (revoked_at) ON api_keys TO "{runtime}"'
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
