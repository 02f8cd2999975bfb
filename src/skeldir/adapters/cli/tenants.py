"""Tenants and their webhook sources: `skeldir tenant ...` and `skeldir source ...`."""

from __future__ import annotations

import sys
import uuid
from datetime import timedelta

import click

from skeldir.adapters.cli.output import emit, json_option, table
from skeldir.adapters.cli.root import main, operator_errors, operator_settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.operations import tenant_deletion, tenants


@main.group()
def tenant() -> None:
    """Tenants and their keys."""


@tenant.command("create")
@click.argument("name")
@click.option("--reporting-currency", default="USD", show_default=True)
@json_option
@click.pass_context
def tenant_create(ctx: click.Context, name: str, reporting_currency: str, as_json: bool) -> None:
    """Create a tenant; its keys are printed once and stored hashed."""
    settings = operator_settings(ctx)
    with operator_errors():
        with owner_connection(settings) as conn:
            created = tenants.create_tenant(
                conn, secret_box(settings, create=True), name, reporting_currency
            )
    emit(
        {
            "tenant_id": str(created.tenant_id),
            "api_key": created.api_key,
            "webhook_key": created.webhook_key,
            "collect_key": created.collect_key,
        },
        as_json,
    )


@tenant.command("configure")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--lookback-days", type=int, default=None, help="Attribution window [30].")
@click.option("--half-life-days", type=float, default=None, help="Time-decay half-life [7].")
@click.option("--retention-touchpoint-days", type=int, default=None,
              help="Days touchpoints are kept after they took place [400].")
@click.option("--retention-payload-days", type=int, default=None,
              help="Days kept payload copies of webhook events are kept [90].")
@click.option("--retention-dead-letter-days", type=int, default=None,
              help="Days dead letters are kept after their replay [30].")
@json_option
@click.pass_context
def tenant_configure(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    lookback_days: int | None,
    half_life_days: float | None,
    retention_touchpoint_days: int | None,
    retention_payload_days: int | None,
    retention_dead_letter_days: int | None,
    as_json: bool,
) -> None:
    """Set a tenant's attribution window and half-life (re-attribute history with `recompute`)
    and its retention periods (applied daily by the worker)."""
    settings = operator_settings(ctx)
    with operator_errors():
        with owner_connection(settings) as conn:
            result = tenants.configure_tenant(
                conn,
                tenant_id,
                lookback_days=lookback_days,
                half_life_days=half_life_days,
                retention={
                    "retention_touchpoint_days": retention_touchpoint_days,
                    "retention_payload_days": retention_payload_days,
                    "retention_dead_letter_days": retention_dead_letter_days,
                },
            )
    emit(result, as_json)


@tenant.command("delete")
@click.argument("tenant_id", type=click.UUID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--batch-size",
    default=tenant_deletion.DEFAULT_BATCH_SIZE,
    show_default=True,
    type=int,
    help="Rows deleted per transaction.",
)
@json_option
@click.pass_context
def tenant_delete(
    ctx: click.Context, tenant_id: uuid.UUID, yes: bool, batch_size: int, as_json: bool
) -> None:
    """Delete a tenant and every row it owns, in every table; resumable (run it again after a
    crash). Its keys and sources stop working at once."""
    settings = operator_settings(ctx)
    with operator_errors():
        with owner_connection(settings, autocommit=True) as conn:
            total = sum(tenant_deletion.remaining_rows(conn, tenant_id).values())
            if not yes:
                click.confirm(
                    f"Delete tenant {tenant_id} and its {total} rows? This cannot be undone",
                    abort=True,
                    err=True,
                )
            with click.progressbar(length=total, label="deleting rows", file=sys.stderr) as bar:
                summary = tenant_deletion.delete_tenant(
                    conn, tenant_id, batch_size=batch_size, on_batch=bar.update
                )
    emit(
        {
            "tenant_id": str(tenant_id),
            "deleted_rows": summary.total,
            "resumed": summary.resumed,
            "tables": {table: n for table, n in summary.deleted.items() if n},
        },
        as_json,
    )


@main.group()
def source() -> None:
    """Webhook sources (one per connected store or account) and their signing secrets."""


@source.command("add")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--provider", required=True, type=click.Choice(tenants.PROVIDERS))
@click.option(
    "--secret",
    required=True,
    help="The signing secret the provider uses (for PayPal: the webhook id).",
)
@click.option("--label", default=None)
@click.option(
    "--tolerance-seconds",
    type=int,
    default=None,
    help="Accepted clock skew of signed timestamps (Stripe, PayPal, Standard) [300].",
)
@json_option
@click.pass_context
def source_add(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    provider: str,
    secret: str,
    label: str | None,
    tolerance_seconds: int | None,
    as_json: bool,
) -> None:
    """Connect a webhook source; prints the URL to paste into the provider."""
    settings = operator_settings(ctx)
    with operator_errors():
        with owner_connection(settings) as conn:
            created = tenants.add_source(
                conn,
                secret_box(settings, create=True),
                tenant_id=tenant_id,
                provider=provider,
                secret=secret,
                public_url=settings.public_url,
                label=label,
                tolerance_seconds=tolerance_seconds,
            )
    emit(
        {
            "source_id": str(created.source_id),
            "secret_id": str(created.secret_id),
            "url": created.url,
        },
        as_json,
    )


@source.command("rotate")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--source", "source_id", required=True, type=click.UUID)
@click.option("--secret", default=None, help="A new signing secret to accept.")
@click.option("--retire", "retire", multiple=True, type=click.UUID, help="Secret id to retire.")
@click.option("--retire-others", is_flag=True, help="Retire every secret but the new one.")
@click.option(
    "--grace",
    default=0,
    show_default=True,
    type=int,
    help="Seconds a retired secret still verifies (providers switch over slowly).",
)
@json_option
@click.pass_context
def source_rotate(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    secret: str | None,
    retire: tuple[uuid.UUID, ...],
    retire_others: bool,
    grace: int,
    as_json: bool,
) -> None:
    """Add a signing secret and/or retire old ones."""
    if not secret and not retire and not retire_others:
        raise click.UsageError("give --secret, --retire or --retire-others")
    settings = operator_settings(ctx)
    with operator_errors():
        with owner_connection(settings) as conn:
            result = tenants.rotate_secret(
                conn,
                secret_box(settings),
                tenant_id=tenant_id,
                source_id=source_id,
                secret=secret,
                retire=list(retire),
                retire_others=retire_others,
                grace=timedelta(seconds=grace),
            )
    emit(result, as_json)


@source.command("list")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@json_option
@click.pass_context
def source_list(ctx: click.Context, tenant_id: uuid.UUID, as_json: bool) -> None:
    """List a tenant's sources and the state of their secrets (never the secrets): one line per
    secret."""
    settings = operator_settings(ctx)
    with owner_connection(settings) as conn:
        sources = tenants.list_sources(conn, tenant_id)
    if as_json:
        emit({"items": sources}, as_json=True)
        return
    rows = [
        {**source, "secret_id": secret["secret_id"], "secret_retired_at": secret["retired_at"]}
        for source in sources
        for secret in source["secrets"] or [{"secret_id": None, "retired_at": None}]
    ]
    table(rows, ("source_id", "provider", "label", "disabled_at", "secret_id", "secret_retired_at"))
