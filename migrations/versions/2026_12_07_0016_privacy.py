"""Privacy: tenant deletion state, retention periods, redacted orders and privacy requests.

A tenant being deleted is marked first (`deleting_at`), so a crash leaves it marked and the
deletion resumes. Each tenant keeps its own retention periods (touchpoints, kept payload copies,
dead letters after replay). An order erased on request keeps its revenue and credits, frozen as
attributed, and is marked `redacted_at`: the recompute leaves its credits alone and a trigger
keeps its identifying columns empty. `privacy_requests` records each erasure, data request and
shop redaction: kind, where it came from, when it was received and completed, and counts. Its
`subject` holds only keyed hashes and visitor ids, and an erasure's subject is emptied once it
completes.

Revision ID: 20261207_0016
Revises: 20261207_0015
Create Date: 2026-12-07
"""

from alembic import context, op
from sql_functions import load

revision = "20261207_0016"
down_revision = "20261207_0015"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE tenants
    ADD COLUMN deleting_at timestamptz,
    ADD COLUMN retention_touchpoint_days integer NOT NULL DEFAULT 400
        CHECK (retention_touchpoint_days BETWEEN 1 AND 3650),
    ADD COLUMN retention_payload_days integer NOT NULL DEFAULT 90
        CHECK (retention_payload_days BETWEEN 1 AND 3650),
    ADD COLUMN retention_dead_letter_days integer NOT NULL DEFAULT 30
        CHECK (retention_dead_letter_days BETWEEN 1 AND 3650);

ALTER TABLE orders ADD COLUMN redacted_at timestamptz;
CREATE INDEX orders_redacted ON orders (tenant_id, order_id) WHERE redacted_at IS NOT NULL;
-- Erasure finds an order's kept payload copies by its external id.
CREATE INDEX webhook_events_order ON webhook_events (tenant_id, provider, external_order_id)
    WHERE external_order_id IS NOT NULL;
-- Retention ages touchpoints by when they took place.
CREATE INDEX touchpoints_occurred ON touchpoints (tenant_id, occurred_at);

CREATE TABLE privacy_requests (
    tenant_id uuid NOT NULL,
    request_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('erasure', 'data_request', 'shop_redact')),
    origin text NOT NULL CHECK (origin IN ('api', 'cli', 'shopify')),
    -- A platform's delivery id, so a webhook delivered twice is one request.
    dedupe_key text,
    source_id uuid,
    -- Keyed hashes (hex), visitor ids and order ids: never an email or a name.
    subject jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    counts jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, request_id),
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX privacy_requests_open ON privacy_requests (tenant_id, received_at)
    WHERE completed_at IS NULL;

ALTER TABLE privacy_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE privacy_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON privacy_requests
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
"""

TRIGGER = r"""
CREATE TRIGGER orders_keep_redacted BEFORE UPDATE ON orders
    FOR EACH ROW WHEN (OLD.redacted_at IS NOT NULL)
    EXECUTE FUNCTION keep_redacted_orders_redacted();
"""

# table -> what the runtime role (API and worker) needs for erasure and retention.
RUNTIME_GRANTS = {
    "privacy_requests": "SELECT, INSERT, UPDATE",
    "touchpoints": "DELETE",
    # A kept payload copy is replaced by a marker; the event's ids and dedupe key stay.
    "webhook_events": "UPDATE (payload)",
    "dead_events": "DELETE",
}


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    worker = context.config.attributes["worker_role"]
    op.execute(SCHEMA)
    load(op, "keep_redacted_orders_redacted")
    op.execute("REVOKE ALL ON FUNCTION keep_redacted_orders_redacted() FROM PUBLIC")
    op.execute(TRIGGER)
    load(op, "tenants_for_retention")
    op.execute("REVOKE ALL ON FUNCTION tenants_for_retention() FROM PUBLIC")
    # It answers across tenants: the worker role's alone, like the other schedules' lists.
    op.execute(f'GRANT EXECUTE ON FUNCTION tenants_for_retention() TO "{worker}"')
    for table, privileges in RUNTIME_GRANTS.items():
        op.execute(f'GRANT {privileges} ON {table} TO "{runtime}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
