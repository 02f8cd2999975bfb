"""A worker never falls back to another role's URL: without its own it does not start."""

from __future__ import annotations

import signal

from click.testing import CliRunner

from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.deployment.launcher import run_up


def test_up_with_every_url_but_the_workers_refuses_to_start(tmp_path, capsys) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://app@127.0.0.1:1/none",
                        owner_database_url="postgresql://owner@127.0.0.1:1/none",
                        broker_url="redis://127.0.0.1:1/0")
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:  # `up` takes over SIGINT and SIGTERM; pytest's own must come back
        assert run_up(settings, host="127.0.0.1", port=1) == 1
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert "SKELDIR_WORKER_DATABASE_URL is not set" in capsys.readouterr().err
    assert not (tmp_path / "postgres").exists(), "nothing embedded was started"


def test_a_worker_without_its_url_refuses_to_start(tmp_path) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "worker"],
                                env={"SKELDIR_WORKER_DATABASE_URL": None,
                                     "SKELDIR_DATABASE_URL": "postgresql://app@127.0.0.1:1/none"})
    assert result.exit_code == 1
    assert "SKELDIR_WORKER_DATABASE_URL is not set" in result.output
