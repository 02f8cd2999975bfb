"""Every command prints one JSON document with --json, and readable lines or a table without."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli_commands import leaf_commands
from skeldir.adapters.cli import main
from skeldir.base.config import Settings

# Long-running servers print logs (JSON lines already), not a result.
SERVERS = {("up",), ("api",), ("worker",)}
PYTHON_REPRS = ("None", "True", "False", "['", "{'")


@pytest.mark.parametrize("command", sorted(set(leaf_commands(main)) - SERVERS), ids=" ".join)
def test_every_command_takes_json(command):
    found = main
    for name in command:
        found = found.commands[name]
    assert any("--json" in getattr(p, "opts", ()) for p in found.params), command


def run(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key,
           "SKELDIR_WORKER_DATABASE_URL": database.worker_database_url}
    result = CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env)
    assert result.exit_code == 0, (args, result.output)
    return result


def both_ways(database: Settings, *args: str) -> tuple[dict, str]:
    """The command's JSON document (exactly one) and its readable output (no Python reprs)."""
    document = json.loads(run(database, *args, "--json").stdout)
    assert isinstance(document, dict), args
    readable = run(database, *args)
    text = readable.stdout
    # An empty listing prints nothing on stdout and says so on stderr.
    assert text.strip() or readable.stderr.strip(), args
    assert not any(r in text for r in PYTHON_REPRS), (args, text)
    return document, text


def test_operator_commands_print_json_or_readable_lines(database: Settings, tmp_path):
    tenant = json.loads(run(database, "tenant", "create", "outputs", "--json").stdout)
    tenant_arg = ("--tenant", tenant["tenant_id"])
    source = json.loads(run(database, "source", "add", *tenant_arg, "--provider", "shopify",
                            "--secret", "first", "--json").stdout)
    rotated, text = both_ways(database, "source", "rotate", *tenant_arg, "--source",
                              source["source_id"], "--secret", "second", "--retire-others")
    assert rotated["retired_secret_ids"] == [source["secret_id"]]
    # The readable run came second: it retired the secret the first one added.
    assert f"retired_secret_ids: {rotated['added_secret_id']}\n" in text
    listed, text = both_ways(database, "source", "list", *tenant_arg)
    assert [s["source_id"] for s in listed["items"]] == [source["source_id"]]
    assert text.splitlines()[0].split()[:2] == ["source_id", "provider"]

    key = json.loads(run(database, "key", "create", *tenant_arg, "--scope", "read",
                         "--json").stdout)
    keys, text = both_ways(database, "key", "list", *tenant_arg)
    assert key["key_id"] in {k["key_id"] for k in keys["items"]} and key["key_id"] in text
    revoked = run(database, "key", "revoke", *tenant_arg, key["key_id"]).stdout
    assert "label: -" in revoked and "last_used_at: -" in revoked
    assert not any(r in revoked for r in PYTHON_REPRS)

    both_ways(database, "tenant", "configure", *tenant_arg, "--lookback-days", "20")
    both_ways(database, "channels", "show", *tenant_arg)
    both_ways(database, "events", "list", *tenant_arg)
    both_ways(database, "dead-events", "list", *tenant_arg)
    both_ways(database, "events", "reparse", *tenant_arg)
    both_ways(database, "recompute", *tenant_arg, "--from", "2026-01-01", "--to", "2026-01-02")
    rates = tmp_path / "rates.csv"
    rates.write_text("date,base,quote,rate\n2026-01-01,EUR,USD,1.1\n")
    both_ways(database, "fx", "load", str(rates))
    both_ways(database, "migrate")


def test_channels_set_suggests_a_recompute_only_when_the_rules_changed(database: Settings,
                                                                       tmp_path):
    tenant = json.loads(run(database, "tenant", "create", "rules", "--json").stdout)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"version": 1, "extends": "default", "rules": [
        {"channel": "affiliate", "utm_source": {"values": ["partnerx"]}}]}))
    first = json.loads(run(database, "channels", "set", "--tenant", tenant["tenant_id"],
                           str(rules), "--json").stdout)
    assert first["version"] == 1 and first["changed"] and "recompute" in first["next"]
    again = run(database, "channels", "set", "--tenant", tenant["tenant_id"], str(rules)).stdout
    assert "changed: no" in again and "recompute" not in again
    shown = run(database, "channels", "show", "--tenant", tenant["tenant_id"]).stdout
    assert shown.startswith("version: 1\n") and "affiliate" in shown and "partnerx" in shown
