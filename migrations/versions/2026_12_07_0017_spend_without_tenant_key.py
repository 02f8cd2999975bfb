"""Spend rows carry no foreign key to tenants, like every table written in bulk.

A spend load writes tens of thousands of rows at once, and the key check took a fifth to a third
of its time in PostgreSQL (83-100 ms of each 10,000-row upsert). The foundation's rule for tables
written on every webhook holds here for the same reason: the tenant id comes from a resolved
credential only, row-level security admits that tenant alone, and a tenant's deletion finds the
table in the catalog (`skeldir tenant delete`), so the cascade is not needed.

Revision ID: 20261207_0017
Revises: 20261207_0016
Create Date: 2026-12-07
"""

from alembic import op

revision = "20261207_0017"
down_revision = "20261207_0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ad_spend DROP CONSTRAINT ad_spend_tenant_id_fkey")


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
