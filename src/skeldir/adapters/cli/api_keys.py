"""`skeldir key ...`: a tenant's API keys from the command line (the same code as the API)."""

from __future__ import annotations

import uuid

import click

from skeldir.adapters.cli.output import emit, json_option, table
from skeldir.adapters.cli.root import main, operator_errors, operator_settings, run_as_runtime
from skeldir.operations import api_keys


@main.group()
def key() -> None:
    """A tenant's API keys (read, admin, collect, webhook)."""


@key.command("create")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--scope", required=True, type=click.Choice(api_keys.SCOPES))
@click.option("--label", default=None)
@json_option
@click.pass_context
def key_create(
    ctx: click.Context, tenant_id: uuid.UUID, scope: str, label: str | None, as_json: bool
) -> None:
    """Create a key; it is printed this once and stored only as a hash."""
    settings = operator_settings(ctx)
    with operator_errors():
        created = run_as_runtime(
            settings, lambda pool: api_keys.create_key(pool, tenant_id, scope, label)
        )
    emit(
        {
            "key_id": str(created.key_id),
            "scope": created.scope,
            "label": created.label,
            "api_key": created.api_key,
        },
        as_json,
    )


@key.command("list")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@json_option
@click.pass_context
def key_list(ctx: click.Context, tenant_id: uuid.UUID, as_json: bool) -> None:
    """List the tenant's keys (never the keys themselves)."""
    settings = operator_settings(ctx)
    with operator_errors():
        items = run_as_runtime(settings, lambda pool: api_keys.list_keys(pool, tenant_id))
    if as_json:
        emit({"items": items}, as_json=True)
    else:
        table(items, ("key_id", "scope", "label", "created_at", "revoked_at", "last_used_at"))


@key.command("revoke")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.argument("key_id", type=click.UUID)
@json_option
@click.pass_context
def key_revoke(ctx: click.Context, tenant_id: uuid.UUID, key_id: uuid.UUID, as_json: bool) -> None:
    """Revoke KEY_ID at once."""
    settings = operator_settings(ctx)
    with operator_errors():
        revoked = run_as_runtime(
            settings, lambda pool: api_keys.revoke_key(pool, tenant_id, key_id)
        )
    emit(revoked, as_json)
