"""`skeldir spend load`: a tenant's ad spend from a CSV file, as the runtime role."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import click

from skeldir.adapters.cli.output import emit, json_option
from skeldir.adapters.cli.root import main, operator_errors, operator_settings, run_as_runtime
from skeldir.base.db import tenant_transaction
from skeldir.domains.spend import ledger
from skeldir.domains.spend.csv_file import read_rows
from skeldir.domains.spend.rows import RowErrors, SpendRow, validate

# Rows written per progress step, inside the one transaction of the whole load.
_STEP = 5_000
# Errors printed as lines at most; --json lists them all.
_SHOWN_ERRORS = 50


@main.group("spend")
def spend_group() -> None:
    """The spend ledger: a tenant's ad spend per day, platform, campaign, ad set and ad."""


@spend_group.command("load")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True,
              help="Load the valid rows of a file with invalid ones (by default: none).")
@json_option
@click.pass_context
def spend_load(ctx: click.Context, tenant_id: uuid.UUID, csv_file: Path, skip_invalid: bool,
               as_json: bool) -> None:
    """Load spend rows (CSV with a header row, the columns of POST /api/spend); a key loaded
    again replaces its figures. Nothing is loaded if any row is invalid, unless --skip-invalid."""
    settings = operator_settings(ctx)
    valid: list[SpendRow] = []
    invalid: list[RowErrors] = []
    with operator_errors():
        for line, row in read_rows(csv_file):
            result = RowErrors(line, (row,)) if isinstance(row, str) else validate(row, line)
            (valid if isinstance(result, SpendRow) else invalid).append(result)
    for error in invalid[:_SHOWN_ERRORS] if not as_json else ():
        click.echo(f"line {error.index}: {'; '.join(error.errors)}", err=True)
    if len(invalid) > _SHOWN_ERRORS and not as_json:
        click.echo(f"... and {len(invalid) - _SHOWN_ERRORS} more invalid rows", err=True)
    errors = [{"line": e.index, "errors": list(e.errors)} for e in invalid]
    if invalid and not skip_invalid:
        if as_json:
            emit({"loaded": 0, "invalid": len(invalid), "errors": errors}, as_json=True)
        raise click.ClickException(
            f"{len(invalid)} invalid rows: nothing loaded (--skip-invalid loads the others)")

    async def load(pool) -> int:
        async with tenant_transaction(pool, tenant_id) as conn:
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants)"):
                raise LookupError(f"no tenant {tenant_id}")
            # One key once, the file's last row of it winning (an upsert touches a row once).
            unique = ledger.last_of_each_key(valid)
            with click.progressbar(length=len(unique), label="loading spend",
                                   file=sys.stderr) as bar:
                for start in range(0, len(unique), _STEP):
                    chunk = unique[start:start + _STEP]
                    await ledger.upsert(conn, tenant_id, chunk)
                    bar.update(len(chunk))
            return len(valid)

    with operator_errors():
        loaded = run_as_runtime(settings, load)
    emit({"loaded": loaded, "invalid": len(invalid), "errors": errors} if as_json
         else {"loaded": loaded, "skipped invalid rows": len(invalid)}, as_json)
