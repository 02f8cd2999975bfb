"""Alembic environment: run linear SQL migrations as the owner role."""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
# Grants go to the runtime and worker roles: given by skeldir.deployment.migrate, or
# `alembic -x runtime_role=... -x worker_role=...`.
for attribute, default in (("runtime_role", "skeldir_app"), ("worker_role", "skeldir_worker")):
    config.attributes.setdefault(
        attribute, context.get_x_argument(as_dictionary=True).get(attribute, default)
    )
url = config.get_main_option("sqlalchemy.url")
engine = create_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
