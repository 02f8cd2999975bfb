"""`runtime.json`: what a running `skeldir up` records in its data dir (the URLs of its
services), so that operator commands pointed at the same data dir find them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from skeldir.base.config import Settings

RUNTIME_FILE = "runtime.json"


def runtime_file(data_dir: Path) -> Path:
    return Path(data_dir) / RUNTIME_FILE


def settings_with_running_services(settings: Settings) -> Settings:
    """Fill what a running `up` wrote into its data dir (URLs), for operator commands."""
    path = runtime_file(settings.data_dir)
    if not path.exists():
        return settings
    recorded = json.loads(path.read_text())
    explicit_public_url = settings.public_url != Settings.public_url
    return replace(
        settings,
        database_url=settings.database_url or recorded.get("database_url"),
        worker_database_url=settings.worker_database_url or recorded.get("worker_database_url"),
        owner_database_url=settings.owner_database_url or recorded.get("owner_database_url"),
        broker_url=settings.broker_url or recorded.get("broker_url"),
        public_url=settings.public_url if explicit_public_url else recorded["api_url"],
    )
