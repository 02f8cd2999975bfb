"""How every `skeldir` command prints: with `--json`, exactly one JSON document on stdout;
without, readable lines (`name: value`) or a table. Progress and hints go to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import click

NOTHING = "-"


def json_option(command: Callable) -> Callable:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of lines."
    )(command)


def readable(value: object) -> str:
    """A value as a person reads it: no Python reprs (None, True, ['…'])."""
    if value is None:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(v) for v in value) if value else NOTHING
    if isinstance(value, dict):
        return ", ".join(f"{k}={readable(v)}" for k, v in value.items()) if value else NOTHING
    return str(value)


def emit(payload: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(payload, default=str))
    else:
        for key, value in payload.items():
            click.echo(f"{key}: {readable(value)}")


def table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Rows as aligned columns under a header; an empty listing says so on stderr."""
    if not rows:
        click.echo("(none)", err=True)
        return
    cells = [[readable(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
