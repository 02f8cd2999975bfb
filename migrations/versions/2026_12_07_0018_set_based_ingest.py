"""A batch of deliveries is ingested set-based: a few statements per tenant, not per event.

Group commit already shared the round trip and the commit of concurrent webhooks, but each event
still ran its own dozen statements through `ingest_event`, and starting a statement costs far
more than the rows it writes. `ingest_events` now stores a tenant's events in one statement and
creates its new orders, books their entries and marks them pending in one statement each; every
event that meets an order already stored (or anything unusual) still goes through
`apply_event_to_ledger` alone, in the batch's order. A lone delivery is a batch of one, so
`ingest_event` has no caller left and goes.

Revision ID: 20261207_0018
Revises: 20261207_0017
Create Date: 2026-12-07
"""

from alembic import op
from sql_functions import load

revision = "20261207_0018"
down_revision = "20261207_0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    load(op, "ingest_events")
    op.execute(
        "DROP FUNCTION ingest_event(uuid, uuid, text, text, text, jsonb, jsonb, jsonb, interval)"
    )


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
