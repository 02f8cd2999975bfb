"""Only the worker role may list tenants across tenants.

The sweeper and the scheduled learner serve every tenant, so they ask SECURITY DEFINER functions
which tenants have work; those answer with tenant ids and no tenant context. The API has no use
for them, and a runtime role that could call them could enumerate every tenant. The worker role
(created by provisioning, a member of the runtime role so it inherits every table grant) is the
only one left that may execute them.

Revision ID: 20261207_0014
Revises: 20261207_0013
Create Date: 2026-12-07
"""

from alembic import context, op

revision = "20261207_0014"
down_revision = "20261207_0013"
branch_labels = None
depends_on = None

WORKER_FUNCTIONS = (
    "tenants_with_touchpoints(timestamp with time zone)",
    "tenants_needing_recompute(interval, interval)",
    "abandon_dead_recompute_jobs(uuid)",
)


def upgrade() -> None:
    runtime = context.config.attributes["runtime_role"]
    worker = context.config.attributes["worker_role"]
    exists = op.get_bind().exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %(role)s", {"role": worker}
    )
    if exists.first() is None:
        raise RuntimeError(
            f'the worker role "{worker}" does not exist: create it as docs/operations.md shows'
            " (`skeldir up` and the tests provision it), then migrate again"
        )
    for signature in WORKER_FUNCTIONS:
        op.execute(f'REVOKE ALL ON FUNCTION {signature} FROM PUBLIC, "{runtime}"')
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{worker}"')


def downgrade() -> None:
    raise NotImplementedError("forward-only migration")
