"""Settings from the environment: every field has its SKELDIR_ variable, both ways."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from skeldir.base.config import Settings


def _changed_from_defaults() -> Settings:
    values: dict[str, object] = {}
    for field in fields(Settings):
        default = field.default
        if isinstance(default, bool):
            raise AssertionError(f"{field.name}: add a changed value for booleans")
        if isinstance(default, int | float):
            values[field.name] = type(default)(default + 3)
        elif isinstance(default, Path):
            values[field.name] = Path("/srv/skeldir-data")
        else:
            values[field.name] = f"postgresql://{field.name}@db.example/skeldir"
    return Settings(**values)


def test_a_child_given_as_env_reads_the_same_settings(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SKELDIR_"):
            monkeypatch.delenv(name)
    settings = _changed_from_defaults()
    assert len(settings.as_env()) == len(fields(Settings))
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env() == settings


def test_an_empty_variable_means_the_default_and_overrides_win(monkeypatch):
    monkeypatch.setenv("SKELDIR_LOG_LEVEL", "")
    monkeypatch.setenv("SKELDIR_DB_POOL_SIZE", "5")
    monkeypatch.delenv("SKELDIR_DATABASE_URL", raising=False)
    configured = Settings.from_env(db_pool_size=9)
    assert (configured.log_level, configured.db_pool_size, configured.database_url) == (
        "INFO", 9, None
    )
    assert "SKELDIR_DATABASE_URL" not in configured.as_env()
