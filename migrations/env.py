"""Alembic environment: run linear SQL migrations as the owner role."""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
# Grants go to the runtime role: given by skeldir.deployment.migrate, or
# `alembic -x runtime_role=...`.
config.attributes.setdefault(
    "runtime_role", context.get_x_argument(as_dictionary=True).get("runtime_role", "skeldir_app")
)
url = config.get_main_option("sqlalchemy.url")
engine = create_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
