"""`skeldir doctor`: one line per deployment check; exits 1 when any check fails."""

from __future__ import annotations

import dataclasses
import sys

import click

from skeldir.adapters.cli.output import emit
from skeldir.adapters.cli.root import main, operator_settings


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the roles, row-level security, migrations, broker, secret key and API."""
    # Imported here: its Alembic (about 20 MiB) stays out of the API and the worker, which
    # load every command of the CLI.
    from skeldir.deployment import doctor as checks

    labels = {checks.OK: "ok  ", checks.WARN: "warn", checks.FAIL: "FAIL"}
    results = checks.run_checks(operator_settings(ctx))
    healthy = all(result.status != checks.FAIL for result in results)
    if as_json:
        emit({"ok": healthy, "checks": [dataclasses.asdict(r) for r in results]}, as_json=True)
    else:
        for result in results:
            line = f"{labels[result.status]}  {result.name}: {result.detail}"
            if result.fix and result.status != checks.OK:
                line += f" (fix: {result.fix})"
            click.echo(line)
    if not healthy:
        sys.exit(1)
