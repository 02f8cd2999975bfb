"""Run the Alembic migrations as the owner role, granting DML to the runtime role and the
cross-tenant schedule functions to the worker role."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from skeldir.base.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def sqlalchemy_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


def alembic_config(settings: Settings) -> Config:
    if not settings.owner_database_url:
        raise RuntimeError("SKELDIR_OWNER_DATABASE_URL is not set")
    roles = {"runtime_role": settings.runtime_role, "worker_role": settings.worker_role}
    for kind, name in roles.items():
        if not _ROLE_NAME.match(name):
            raise ValueError(f"{kind.replace('_', ' ')} name {name!r} is not a plain identifier")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Migrations import their helpers (sql_functions) from beside them.
    config.set_main_option("path_separator", "os")
    config.set_main_option("prepend_sys_path", str(MIGRATIONS_DIR))
    # '%' is ConfigParser's interpolation marker; URL-encoded passwords contain it.
    config.set_main_option(
        "sqlalchemy.url", sqlalchemy_url(settings.owner_database_url).replace("%", "%%")
    )
    config.attributes.update(roles)
    return config


def upgrade(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")


def heads(settings: Settings) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(settings)).get_heads())
