"""Exchange rates into each tenant's reporting currency: `skeldir fx load`."""

from __future__ import annotations

from pathlib import Path

import click

from skeldir.adapters.cli.output import emit, json_option
from skeldir.adapters.cli.root import main, operator_errors, operator_settings
from skeldir.base.db import owner_connection
from skeldir.operations import exchange_rates


@main.group("fx")
def fx_group() -> None:
    """Exchange rates into each tenant's reporting currency."""


@fx_group.command("load")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@click.pass_context
def fx_load(ctx: click.Context, csv_file: Path, as_json: bool) -> None:
    """Load daily rates (CSV: date,base,quote,rate); orders that lacked one are re-attributed."""
    settings = operator_settings(ctx)
    with operator_errors():
        rates = exchange_rates.read_rates(csv_file)
    with owner_connection(settings) as conn:
        emit(exchange_rates.load_rates(conn, rates), as_json)
