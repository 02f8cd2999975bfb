"""The `skeldir` group, the helpers its commands share, and the commands that run and set up
the system (up, api, worker, migrate, tenants, sources, rates, channel rules, recompute)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import click
import uvicorn

from skeldir.adapters.api.header_cap import capped_http_protocol
from skeldir.adapters.app import create_app
from skeldir.adapters.cli.group import GroupWithGlobalOptions, settings_of
from skeldir.adapters.cli.output import emit, json_option, readable, table
from skeldir.adapters.tasks.worker import run_worker
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import create_pool, owner_connection
from skeldir.base.observability.logging import configure_logging
from skeldir.deployment import migrate
from skeldir.deployment.launcher import run_up, settings_with_running_services
from skeldir.domains.attribution.channel_rule_format import RuleSetError
from skeldir.domains.attribution.channel_rules import default_rule_set
from skeldir.operations import exchange_rates, tenant_channel_rules, tenants
from skeldir.operations import reattribution

T = TypeVar("T")


def _settings(ctx: click.Context) -> Settings:
    return settings_of(ctx)


def operator_settings(ctx: click.Context) -> Settings:
    settings = settings_with_running_services(_settings(ctx))
    if not settings.owner_database_url:
        raise click.ClickException(
            f"no database: start `skeldir up --data-dir {settings.data_dir}` first, "
            "or set SKELDIR_OWNER_DATABASE_URL"
        )
    return settings


def run_as_runtime(settings: Settings, action: Callable[..., Awaitable[T]]) -> T:
    """Run `action(pool)` with a small pool of the runtime role: commands that act inside one
    tenant go through the same row-level security as the API."""
    if not settings.database_url:
        raise click.ClickException(
            "no runtime database URL: start `skeldir up` or set SKELDIR_DATABASE_URL"
        )

    async def with_pool() -> T:
        pool = await create_pool(settings, max_size=2)
        try:
            return await action(pool)
        finally:
            await pool.close()

    return asyncio.run(with_pool())


async def follow_worker(pool, tenant_id: uuid.UUID, timeout: int) -> None:
    """Wait, with a progress bar, until the worker has attributed every pending order."""
    deadline = time.monotonic() + timeout
    remaining = await reattribution.pending_orders(pool, tenant_id)
    with click.progressbar(length=remaining, label="re-attributing", file=sys.stderr) as bar:
        while remaining:
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{remaining} orders still pending after {timeout}s: is a worker running?"
                )
            await asyncio.sleep(0.5)
            now_pending = await reattribution.pending_orders(pool, tenant_id)
            bar.update(max(0, remaining - now_pending))
            remaining = now_pending


@contextmanager
def operator_errors() -> Iterator[None]:
    """An operator's mistake (bad input, unknown tenant) as a one-line error, not a traceback."""
    try:
        yield
    except (
        tenants.AdminError, exchange_rates.RateFileError, RuleSetError, LookupError, ValueError
    ) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=GroupWithGlobalOptions)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Skeldir: verified commerce webhooks in, exact attribution and fresh reports out."""
    settings_of(ctx)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--worker-metrics-port",
    type=int,
    default=None,
    help="Port of the worker's metrics endpoint [default: --port + 1].",
)
@click.pass_context
def up(ctx: click.Context, host: str, port: int, worker_metrics_port: int | None) -> None:
    """Run the whole system (embedded PostgreSQL and Redis unless URLs are given)."""
    settings = _settings(ctx)
    configure_logging(settings.log_level, component="supervisor")
    metrics_port = worker_metrics_port or (port + 1)
    settings = replace(settings, worker_metrics_port=metrics_port)
    sys.exit(run_up(settings, host=host, port=port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def api(ctx: click.Context, host: str, port: int) -> None:
    """Run the API alone (uvicorn), for deployments."""
    settings = _settings(ctx)
    configure_logging(settings.log_level, component="api")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http=capped_http_protocol(settings.max_header_bytes),
        timeout_graceful_shutdown=10,
    )


@main.command()
@click.option("--beat/--no-beat", default=False, help="Also run the periodic sweeper.")
@click.pass_context
def worker(ctx: click.Context, beat: bool) -> None:
    """Run a Celery worker alone, for deployments."""
    settings = _settings(ctx)
    configure_logging(settings.log_level, component="worker")
    run_worker(settings, beat=beat)


@main.command("migrate")
@json_option
@click.pass_context
def migrate_command(ctx: click.Context, as_json: bool) -> None:
    """Apply database migrations as the owner role."""
    settings = operator_settings(ctx)
    migrate.upgrade(settings)
    emit({"migrations": "at head", "head": migrate.heads(settings)}, as_json)


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
@json_option
@click.pass_context
def tenant_configure(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    lookback_days: int | None,
    half_life_days: float | None,
    as_json: bool,
) -> None:
    """Set a tenant's attribution window and half-life; re-attribute history with `recompute`."""
    settings = operator_settings(ctx)
    with operator_errors():
        with owner_connection(settings) as conn:
            result = tenants.configure_tenant(
                conn, tenant_id, lookback_days=lookback_days, half_life_days=half_life_days
            )
    emit(result, as_json)


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


@main.command()
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--from", "start", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--to", "end", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the worker until every order of the range is attributed again.",
)
@click.option(
    "--timeout", default=3600, show_default=True, type=int, help="Seconds to wait at most."
)
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
        total = await reattribution.orders_in_range(pool, tenant_id, first, last)
        with click.progressbar(length=total, label="marking orders", file=sys.stderr) as bar:
            await reattribution.mark_range_pending(
                pool, tenant_id, first, last, on_batch=bar.update
            )
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
