"""A tenant's channel rules: `skeldir channels set` and `skeldir channels show`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click

from skeldir.adapters.cli.output import emit, json_option, readable, table
from skeldir.adapters.cli.root import main, operator_errors, operator_settings
from skeldir.base.db import owner_connection
from skeldir.domains.attribution.channel_rules import default_rule_set
from skeldir.operations import tenant_channel_rules


@main.group()
def channels() -> None:
    """A tenant's channel rules (versioned)."""


@channels.command("set")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.argument("rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@click.pass_context
def channels_set(ctx: click.Context, tenant_id: uuid.UUID, rules_file: Path, as_json: bool) -> None:
    """Store RULES_FILE (JSON, see docs/channel-rules.md) as the tenant's next rules version."""
    settings = operator_settings(ctx)
    with operator_errors():
        document = json.loads(rules_file.read_text(encoding="utf-8"))
        with owner_connection(settings) as conn:
            stored = tenant_channel_rules.set_channel_rules(conn, tenant_id, document)
    result = {
        "version": stored.version,
        "fingerprint": stored.fingerprint,
        "changed": stored.changed,
    }
    if stored.changed:
        result["next"] = (
            f"re-attribute history with"
            f" `skeldir recompute --tenant {tenant_id} --from ... --to ...`"
        )
    emit(result, as_json)


@channels.command("show")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@json_option
@click.pass_context
def channels_show(ctx: click.Context, tenant_id: uuid.UUID, as_json: bool) -> None:
    """Print the tenant's rules in force (the defaults when none were set); with --json, the
    stored document (version 0 and "default" when none was set)."""
    settings = operator_settings(ctx)
    with owner_connection(settings) as conn:
        found = tenant_channel_rules.channel_rules(conn, tenant_id)
    if as_json:
        emit({"version": found[0] if found else 0, "rules": found[1] if found else "default"}, True)
        return
    document = found[1] if found else default_rule_set().to_document()
    click.echo(f"version: {found[0] if found else '0 (the defaults)'}")
    click.echo(f"channels: {readable(document['channels'])}")
    click.echo(f"fallback: {document.get('fallback') or 'unknown'}")
    table(
        [
            {
                "rule": number,
                "channel": rule["channel"],
                "when": "; ".join(
                    f"{name} {json.dumps(condition)}"
                    for name, condition in rule.items()
                    if name not in ("channel", "description")
                ),
            }
            for number, rule in enumerate(document["rules"], start=1)
        ],
        ("rule", "channel", "when"),
    )
