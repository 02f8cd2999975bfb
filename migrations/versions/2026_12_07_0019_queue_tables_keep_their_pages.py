"""Vacuum leaves the queue tables' empty pages in place instead of truncating them.

`pending_orders` and `report_dirty_orders` are queues: every webhook inserts a row and every
recompute or refresh deletes it, so their tail pages empty and fill again all day. Truncating
them takes the table's exclusive lock, which every ingest then waits for (a soak at 1,000
webhooks/s saw autovacuum waiting to truncate pending_orders beside p99 spikes of seconds). The
tables stay small either way; their pages are reused.

Revision ID: 20261207_0019
Revises: 20261207_0018
Create Date: 2026-12-07
"""

from alembic import op

revision = "20261207_0019"
down_revision = "20261207_0018"
branch_labels = None
depends_on = None

QUEUE_TABLES = ("pending_orders", "report_dirty_orders")


def upgrade() -> None:
    for table in QUEUE_TABLES:
        op.execute(f"ALTER TABLE {table} SET (vacuum_truncate = false)")


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
