"""The `skeldir` group and the helpers its commands share: the operator's settings, the
runtime role's pool, operator mistakes as one-line errors, marking orders to re-attribute and
following the worker.

The commands live beside it, one module per concept, each adding itself to `main`."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import TypeVar

import click

from skeldir.adapters.cli.group import GroupWithGlobalOptions, settings_of
from skeldir.base.config import Settings
from skeldir.base.db import create_pool
from skeldir.deployment.running_services import settings_with_running_services
from skeldir.domains.attribution.channel_rule_format import RuleSetError
from skeldir.operations import exchange_rates, reattribution, tenants

T = TypeVar("T")


def operator_settings(ctx: click.Context) -> Settings:
    settings = settings_with_running_services(settings_of(ctx))
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


def wait_options(wait_help: str) -> Callable[[Callable], Callable]:
    """The `--wait/--no-wait` and `--timeout` options of a command that can follow the worker."""

    def add(command: Callable) -> Callable:
        command = click.option(
            "--timeout", default=3600, show_default=True, type=int, help="Seconds to wait at most."
        )(command)
        return click.option(
            "--wait/--no-wait", default=True, show_default=True, help=wait_help
        )(command)

    return add


async def mark_range(pool, tenant_id: uuid.UUID, first: date, last: date) -> tuple[int, int]:
    """Mark the orders of days `first` to `last` for re-attribution, with a progress bar:
    (orders counted first, orders marked)."""
    total = await reattribution.orders_in_range(pool, tenant_id, first, last)
    with click.progressbar(length=total, label="marking orders", file=sys.stderr) as bar:
        marked = await reattribution.mark_range_pending(
            pool, tenant_id, first, last, on_batch=bar.update
        )
    return total, marked


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
