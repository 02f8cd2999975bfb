"""`skeldir events ...` and `skeldir dead-events ...`: list stored and dead events, replay dead
events and re-parse stored events, as the runtime role through the code the API runs.

Orders these commands change are left pending: the worker's sweeper schedules their
re-attribution within seconds, so the CLI needs no broker of its own.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import click
from starlette.exceptions import HTTPException

from skeldir.adapters.api.pagination import decode_cursor, page
from skeldir.adapters.cli.output import json_option, table
from skeldir.adapters.cli.root import main, operator_errors, operator_settings, run_as_runtime
from skeldir.base.crypto import secret_box
from skeldir.domains.providers.registry import PROVIDERS
from skeldir.operations import dead_letters, event_log, reparse
from skeldir.operations.event_log import EventFilter, Keyset

MAX_LIST = 1000
_LEFT_PENDING = "changed orders are pending: the worker's sweeper re-attributes them in seconds"


def _filter_options(command: Callable) -> Callable:
    for option in reversed(
        (
            click.option("--provider", type=click.Choice(list(PROVIDERS)), default=None),
            click.option("--topic", default=None),
            click.option(
                "--from",
                "start",
                default=None,
                help="Received at or after: ISO date (its UTC day) or date-time (UTC by default).",
            ),
            click.option(
                "--to",
                "end",
                default=None,
                help="Received before: ISO date (to the end of that UTC day) or date-time.",
            ),
        )
    ):
        command = option(command)
    return command


def _filter(provider, topic, start, end) -> EventFilter:
    with operator_errors():
        return event_log.event_filter(provider, topic, start, end)


def _document(item) -> dict:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in dataclasses.asdict(item).items()
    }


def _keyset_after(cursor: str | None) -> Keyset | None:
    """The position a `next_cursor` names (the API's cursors, which the CLI prints too)."""
    try:
        values = decode_cursor(cursor, 2)
        return None if values is None else (datetime.fromisoformat(values[0]), uuid.UUID(values[1]))
    except (HTTPException, TypeError, ValueError):
        raise click.BadParameter(
            "not a cursor this command printed", param_hint="--cursor"
        ) from None


def _print_listing(
    items: list, limit: int, as_json: bool, columns: tuple[str, ...], id_field: str
) -> None:
    shown, next_cursor = page(
        items, limit, lambda item: (item.received_at.isoformat(), str(getattr(item, id_field)))
    )
    if as_json:
        document = {"items": [_document(i) for i in shown], "next_cursor": next_cursor}
        click.echo(json.dumps(document, default=str))
        return
    table([_document(i) for i in shown], columns)
    if next_cursor:
        click.echo(f"more match: the next page is --cursor {next_cursor}", err=True)


def _cursor_option(command: Callable) -> Callable:
    return click.option(
        "--cursor", default=None, help="Start after this page: the next_cursor a listing printed."
    )(command)


@main.group()
def events() -> None:
    """A tenant's stored webhook events (payloads are never shown)."""


@events.command("list")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@_filter_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, MAX_LIST))
@_cursor_option
@json_option
@click.pass_context
def events_list(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    provider,
    topic,
    start,
    end,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List events, newest first: received_at, event_id, provider, topic, order."""
    filters = _filter(provider, topic, start, end)
    after = _keyset_after(cursor)
    settings = operator_settings(ctx)
    items = run_as_runtime(
        settings,
        lambda pool: event_log.list_events(pool, tenant_id, filters, limit=limit + 1, after=after),
    )
    _print_listing(
        items,
        limit,
        as_json,
        ("received_at", "event_id", "provider", "topic", "external_order_id"),
        "event_id",
    )


@events.command("reparse")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@_filter_options
@json_option
@click.pass_context
def events_reparse(
    ctx: click.Context, tenant_id: uuid.UUID, provider, topic, start, end, as_json: bool
) -> None:
    """Parse stored events again with the current parser and correct the order ledger."""
    filters = _filter(provider, topic, start, end)
    settings = operator_settings(ctx)

    async def run(pool):
        total = await event_log.count_events(pool, tenant_id, filters)
        with click.progressbar(length=total, label="re-parsing events", file=sys.stderr) as bar:
            return await reparse.reparse_events(
                pool,
                tenant_id,
                filters,
                chain_stale=timedelta(seconds=settings.chain_stale_seconds),
                on_batch=bar.update,
            )

    summary = run_as_runtime(settings, run)
    result = {
        "reparsed": summary.reparsed,
        "changed_orders": len(summary.changed_orders),
        "failed": [_document(f) for f in summary.failed],
        "failed_count": summary.failed_count,
    }
    if as_json:
        click.echo(json.dumps(result, default=str))
    else:
        click.echo(
            f"reparsed: {summary.reparsed}, changed orders: {len(summary.changed_orders)},"
            f" failed: {summary.failed_count}"
        )
        for failure in summary.failed:
            click.echo(f"failed\t{failure.event_id}\t{failure.reason}")
    if summary.changed_orders:
        click.echo(_LEFT_PENDING, err=True)


@main.group("dead-events")
def dead_events() -> None:
    """Verified deliveries the parser refused; replay them after a fix (bodies never shown)."""


@dead_events.command("list")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@_filter_options
@click.option(
    "--status",
    type=click.Choice([dead_letters.DEAD, dead_letters.REPLAYED]),
    default=None,
    help="dead: not replayed yet; replayed: stored by a replay.",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, MAX_LIST))
@_cursor_option
@json_option
@click.pass_context
def dead_events_list(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    provider,
    topic,
    start,
    end,
    status: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List dead events, newest first: received_at, id, provider, topic, replayed_at, reason."""
    filters = _filter(provider, topic, start, end)
    after = _keyset_after(cursor)
    settings = operator_settings(ctx)
    items = run_as_runtime(
        settings,
        lambda pool: dead_letters.list_dead_events(
            pool, tenant_id, filters, status=status, limit=limit + 1, after=after
        ),
    )
    _print_listing(
        items,
        limit,
        as_json,
        ("received_at", "dead_event_id", "provider", "topic", "replayed_at", "reason"),
        "dead_event_id",
    )


@dead_events.command("replay")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.argument("dead_event_ids", nargs=-1, type=click.UUID)
@click.option(
    "--all", "replay_all", is_flag=True, help="Every dead event that matches the filters."
)
@_filter_options
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, dead_letters.MAX_BULK_REPLAY),
    help="With --all: most dead events replayed (never replayed ones first).",
)
@json_option
@click.pass_context
def dead_events_replay(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    dead_event_ids,
    replay_all: bool,
    provider,
    topic,
    start,
    end,
    limit: int,
    as_json: bool,
) -> None:
    """Replay DEAD_EVENT_IDS (or --all that match) with the current parser. Signatures and
    timestamps are not checked again: they were verified when the deliveries arrived."""
    if not dead_event_ids and not replay_all:
        raise click.UsageError("give DEAD_EVENT_IDS or --all")
    if dead_event_ids and replay_all:
        raise click.UsageError("give DEAD_EVENT_IDS or --all, not both")
    if dead_event_ids and any(v is not None for v in (provider, topic, start, end)):
        raise click.UsageError("--provider, --topic, --from and --to select events for --all")
    filters = _filter(provider, topic, start, end)
    settings = operator_settings(ctx)
    try:
        box = secret_box(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc

    async def run(pool):
        ids = list(dead_event_ids) or await dead_letters.dead_event_ids(
            pool, tenant_id, filters, limit=limit
        )
        with click.progressbar(length=len(ids), label="replaying", file=sys.stderr) as bar:
            return await dead_letters.replay_dead_events(
                pool,
                box,
                tenant_id,
                ids,
                chain_stale=timedelta(seconds=settings.chain_stale_seconds),
                on_replayed=lambda _result: bar.update(1),
            )

    with operator_errors():
        results = run_as_runtime(settings, run)
    outcomes = [r.outcome for r in results]
    counts = {
        outcome: outcomes.count(outcome)
        for outcome in (dead_letters.REPLAYED, dead_letters.DUPLICATE, dead_letters.STILL_DEAD)
    }
    if as_json:
        items = [
            {k: v for k, v in _document(r).items() if v is not None and k != "needs_chain"}
            for r in results
        ]
        click.echo(json.dumps({"items": items, **counts}, default=str))
    else:
        table(
            [
                {"dead_event_id": r.dead_event_id, "outcome": r.outcome,
                 "event_id_or_reason": r.event_id or r.reason}
                for r in results
            ],
            ("dead_event_id", "outcome", "event_id_or_reason"),
        )
        click.echo(", ".join(f"{outcome}: {n}" for outcome, n in counts.items()))
    if counts[dead_letters.REPLAYED]:
        click.echo(_LEFT_PENDING, err=True)
