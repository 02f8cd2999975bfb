"""`skeldir connector ...`: a tenant's ad-platform spend connectors, as the runtime role.

Credentials come from a JSON file or stdin (`--credentials-file -`), never from the command
line, where other users and shell histories would see them; they are never printed again.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import datetime

import click

from skeldir.adapters.cli.group import settings_of
from skeldir.adapters.cli.output import emit, json_option, table
from skeldir.adapters.cli.root import main, operator_errors, operator_settings, run_as_runtime
from skeldir.base.crypto import secret_box
from skeldir.base.db import tenant_transaction
from skeldir.domains.connectors import pulls, store
from skeldir.domains.connectors.api import platform_api
from skeldir.domains.connectors.platform import ConnectorError
from skeldir.domains.connectors.registry import CONNECTORS

_COLUMNS = ("connector_id", "platform", "account_id", "status", "last_success_at", "last_error")


@main.group("connector")
def connector_group() -> None:
    """Spend connectors: Meta, Google Ads and TikTok accounts pulled into the spend ledger."""


def _read_credentials(source: click.File) -> dict:
    try:
        document = json.load(source)
    except ValueError:
        raise click.ClickException("the credentials file is not JSON") from None
    if not isinstance(document, dict):
        raise click.ClickException('the credentials file is one JSON object: {"name": "value"}')
    return document


async def _in_tenant(pool, tenant_id: uuid.UUID, action):
    async with tenant_transaction(pool, tenant_id) as conn:
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants)"):
            raise LookupError(f"no tenant {tenant_id}")
        return await action(conn)


@connector_group.command("add")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--platform", required=True, type=click.Choice(list(CONNECTORS)))
@click.option("--account", "account_id", required=True,
              help="act_123 (Meta), 123-456-7890 (Google Ads), the advertiser id (TikTok).")
@click.option("--credentials-file", required=True, type=click.File("r"),
              help="A JSON object of the platform's credentials; - reads stdin.")
@json_option
@click.pass_context
def connector_add(ctx: click.Context, tenant_id: uuid.UUID, platform: str, account_id: str,
                  credentials_file, as_json: bool) -> None:
    """Connect an ad account; connecting it again replaces its credentials (after
    needs_reauth). Spend is pulled by the worker's schedule, or at once by `backfill`."""
    settings = operator_settings(ctx)
    credentials = _read_credentials(credentials_file)
    box = secret_box(settings, create=True)
    with operator_errors():
        added = run_as_runtime(settings, lambda pool: _in_tenant(
            pool, tenant_id, lambda conn: store.add(conn, box, tenant_id, platform, account_id,
                                                    credentials)))
    emit(added.public(), as_json)


@connector_group.command("list")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@json_option
@click.pass_context
def connector_list(ctx: click.Context, tenant_id: uuid.UUID, as_json: bool) -> None:
    """A tenant's connectors and their status (never their credentials)."""
    settings = operator_settings(ctx)
    with operator_errors():
        listed = run_as_runtime(settings, lambda pool: _in_tenant(pool, tenant_id, store.listed))
    now = datetime.now().astimezone()
    rows = [c.public(now) for c in listed]
    if as_json:
        click.echo(json.dumps({"connectors": rows}))
    else:
        table(rows, _COLUMNS)


@connector_group.command("remove")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.argument("connector_id", type=click.UUID)
@json_option
@click.pass_context
def connector_remove(ctx: click.Context, tenant_id: uuid.UUID, connector_id: uuid.UUID,
                     as_json: bool) -> None:
    """Forget a connector and its credentials; the spend it pulled stays in the ledger."""
    settings = operator_settings(ctx)
    with operator_errors():
        removed = run_as_runtime(settings, lambda pool: _in_tenant(
            pool, tenant_id, lambda conn: store.remove(conn, connector_id)))
    if not removed:
        raise click.ClickException(f"no connector {connector_id} for tenant {tenant_id}")
    emit({"removed": str(connector_id)}, as_json)


@connector_group.command("backfill")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.argument("connector_id", type=click.UUID)
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]))
@json_option
@click.pass_context
def connector_backfill(ctx: click.Context, tenant_id: uuid.UUID, connector_id: uuid.UUID,
                       start: datetime, end: datetime, as_json: bool) -> None:
    """Pull FROM to TO (inclusive) now, a bounded chunk at a time, each chunk replacing its days.
    Interrupted, the same command resumes after the last chunk done."""
    settings = operator_settings(ctx)
    box = secret_box(settings)
    first, last = start.date(), end.date()

    async def backfill(pool) -> dict:
        stored = await _in_tenant(pool, tenant_id, lambda conn: store.start_backfill(
            conn, connector_id, first, last))
        if stored.status == "needs_reauth":
            raise click.ClickException(
                f"connector {connector_id} needs a new grant: `skeldir connector add` it again")
        total = (last - first).days + 1
        done = (stored.backfill_next - first).days if stored.backfill_next else total
        rows = 0
        with click.progressbar(length=total, label="pulling days", file=sys.stderr) as bar:
            bar.update(done)
            async with platform_api(settings) as api:
                while (result := await pulls.backfill_step(pool, api, box, tenant_id,
                                                           connector_id)) is not None:
                    if result.outcome != "ok":
                        raise click.ClickException(
                            f"{result.start}..{result.end}: {result.outcome}: {result.error}"
                            " (run the same command again to resume from there)")
                    rows += result.rows
                    bar.update((result.end - result.start).days + 1)
        return {"connector_id": str(connector_id), "from": first.isoformat(),
                "to": last.isoformat(), "rows": rows, "resumed_at": (
                    stored.backfill_next.isoformat() if stored.backfill_next != first else None)}

    with operator_errors():
        summary = run_as_runtime(settings, backfill)
    emit(summary, as_json)




@connector_group.command("accounts")
@click.option("--platform", required=True, type=click.Choice(list(CONNECTORS)))
@click.option("--credentials-file", required=True, type=click.File("r"),
              help="A JSON object of the platform's credentials; - reads stdin.")
@json_option
@click.pass_context
def connector_accounts(ctx: click.Context, platform: str, credentials_file,
                       as_json: bool) -> None:
    """The ad accounts these credentials can read, to choose --account for `add` (asks the
    platform; stores nothing)."""
    settings = settings_of(ctx)
    with operator_errors():
        credentials = store.checked_credentials(platform, _read_credentials(credentials_file))

    async def listed() -> list[dict]:
        async with platform_api(settings) as api:
            found = await CONNECTORS[platform].accounts(api, credentials)
        return [{"account_id": a.account_id, "name": a.name, "currency": a.currency}
                for a in found]

    try:
        accounts = asyncio.run(listed())
    except ConnectorError as exc:
        raise click.ClickException(f"{exc.outcome}: {exc}") from None
    if as_json:
        click.echo(json.dumps({"accounts": accounts}))
    else:
        table(accounts, ("account_id", "name", "currency"))
