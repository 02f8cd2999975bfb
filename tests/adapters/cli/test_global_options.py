"""Global options (`--data-dir`) work before a command's name and after it, for every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli_commands import leaf_commands
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.deployment.running_services import runtime_file


@pytest.mark.parametrize("command", leaf_commands(main), ids=" ".join)
def test_every_command_takes_data_dir_after_its_name(command, tmp_path):
    result = CliRunner().invoke(main, [*command, "--data-dir", str(tmp_path), "--help"])
    assert result.exit_code == 0, result.output


def recorded_system(database: Settings, data_dir: Path) -> Path:
    """A data dir as a running `skeldir up` leaves it: the URLs in its runtime file."""
    data_dir.mkdir()
    runtime_file(data_dir).write_text(json.dumps({
        "database_url": database.database_url,
        "worker_database_url": database.worker_database_url,
        "owner_database_url": database.owner_database_url,
        "api_url": "http://127.0.0.1:1"}))
    return data_dir


def run_without_urls(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": None, "SKELDIR_DATABASE_URL": None,
           "SKELDIR_WORKER_DATABASE_URL": None, "SKELDIR_DATA_DIR": None, "SKELDIR_SECRET_KEY": database.secret_key}
    return CliRunner().invoke(main, list(args), env=env)


def test_a_data_dir_after_the_command_finds_the_running_system(database: Settings, tmp_path):
    running = recorded_system(database, tmp_path / "running")
    created = run_without_urls(database, "tenant", "create", "after", "--json",
                               "--data-dir", str(running))
    assert created.exit_code == 0, created.output
    tenant_id = json.loads(created.output)["tenant_id"]
    # A runtime-role command (keys) and an owner-role command (sources), option last.
    keys = run_without_urls(database, "key", "list", "--tenant", tenant_id,
                            "--data-dir", str(running))
    assert keys.exit_code == 0, keys.output
    assert "collect" in keys.output
    sources = run_without_urls(database, "source", "list", "--tenant", tenant_id,
                               "--data-dir", str(running))
    assert sources.exit_code == 0, sources.output


def test_the_data_dir_nearest_the_command_wins(database: Settings, tmp_path):
    running = recorded_system(database, tmp_path / "running")
    empty = tmp_path / "empty"
    nearer = run_without_urls(database, "--data-dir", str(empty), "tenant", "create", "x",
                              "--data-dir", str(running))
    assert nearer.exit_code == 0, nearer.output
    farther = run_without_urls(database, "--data-dir", str(running), "tenant", "create", "x",
                               "--data-dir", str(empty))
    assert farther.exit_code != 0
    # The error names a command that works as written.
    assert f"start `skeldir up --data-dir {empty}` first" in farther.output
