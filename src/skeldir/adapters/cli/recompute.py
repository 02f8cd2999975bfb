"""Re-attributing a date range of a tenant's orders: `skeldir recompute`."""

from __future__ import annotations

import uuid

import click

from skeldir.adapters.cli.output import emit, json_option
from skeldir.adapters.cli.root import (
    follow_worker,
    main,
    mark_range,
    operator_settings,
    run_as_runtime,
    wait_options,
)


@main.command()
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--from", "start", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--to", "end", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@wait_options("Follow the worker until every order of the range is attributed again.")
@json_option
@click.pass_context
def recompute(
    ctx: click.Context, tenant_id: uuid.UUID, start, end, wait: bool, timeout: int, as_json: bool
) -> None:
    """Re-attribute a date range of a tenant's orders (after rules, weights or rates changed)."""
    settings = operator_settings(ctx)
    first, last = start.date(), end.date()
    if last < first:
        raise click.UsageError("--to is before --from")
    # One pool for the whole command: counting, marking and following the worker.
    async def mark_and_follow(pool) -> int:
        total, _ = await mark_range(pool, tenant_id, first, last)
        if wait and total:
            await follow_worker(pool, tenant_id, timeout)
        return total

    total = run_as_runtime(settings, mark_and_follow)
    if as_json:
        emit({"orders_marked": total, "re_attributed": wait}, as_json=True)
    elif wait:
        click.echo(f"{total} orders re-attributed")
    else:
        click.echo(f"{total} orders marked; the worker re-attributes them")
