"""The deployment examples in deploy/ work as shipped: every systemd unit runs a `skeldir`
command the CLI accepts, the environment file names only settings that exist, and HAProxy
accepts its configuration. (tests/cluster runs that configuration in front of two API hosts.)"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from skeldir.adapters.cli.root import main
from skeldir.base.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def exec_start(unit: Path) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(unit)
    return shlex.split(parser["Service"]["ExecStart"].replace("%i", "8000"))


def test_there_are_units_for_the_api_the_workers_and_the_one_beat():
    commands = [exec_start(unit)[1:] for unit in UNITS]
    assert ["api", "--host", "0.0.0.0", "--port", "8000"] in commands
    assert ["worker", "--no-beat"] in commands and ["worker", "--beat"] in commands


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_each_unit_runs_a_command_the_cli_accepts(unit: Path):
    program, *args = exec_start(unit)
    assert Path(program).name == "skeldir"
    # --help is handled after every option is parsed: an unknown option still fails.
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output


def test_the_environment_file_names_only_settings_that_exist():
    known = {"SKELDIR_" + field.name.upper() for field in fields(Settings)}
    names = [line.split("=", 1)[0] for line in (DEPLOY / "skeldir.env.example").read_text()
             .splitlines() if line and not line.startswith("#")]
    assert names and set(names) <= known, set(names) - known


def test_haproxy_accepts_its_configuration():
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (make test installs Debian's when run as root)")
    env = {**os.environ, "SKELDIR_LB_BIND": "127.0.0.1:61080",
           "SKELDIR_API1": "127.0.0.1:61081", "SKELDIR_API2": "127.0.0.1:61082"}
    done = subprocess.run([haproxy, "-c", "-f", DEPLOY / "haproxy" / "skeldir.cfg"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
