"""Privacy requests from the command line: `skeldir privacy erase` and `skeldir privacy list`.

The command records the request exactly as the admin API does (identifiers hashed at once) and
then carries it out itself through the same idempotent step the worker's task runs, so an
operator sees its counts; with --no-wait it leaves the request to the worker's sweep."""

from __future__ import annotations

import uuid

import click

from skeldir.adapters.cli.output import emit, json_option, table
from skeldir.adapters.cli.root import main, operator_errors, operator_settings, run_as_runtime
from skeldir.base.crypto import secret_box
from skeldir.base.db import tenant_transaction
from skeldir.domains.privacy import requests
from skeldir.domains.privacy.processing import process_request
from skeldir.domains.privacy.subjects import OrderRef, SubjectError
from skeldir.operations import privacy_requests


@main.group()
def privacy() -> None:
    """Erasure on request and the record of privacy requests."""


def _order(value: str) -> OrderRef:
    provider, sep, order_id = value.partition(":")
    if not sep or not provider or not order_id:
        raise click.BadParameter("an order is PROVIDER:ORDER_ID, e.g. shopify:820982911946154508")
    return OrderRef(provider, order_id)


@privacy.command("erase")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--email", "emails", multiple=True, help="An email (hashed at once).")
@click.option("--customer-ref", "refs", multiple=True, help="A customer reference (hashed).")
@click.option("--visitor-id", "visitors", multiple=True)
@click.option("--order", "orders", multiple=True, help="PROVIDER:ORDER_ID")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Carry the erasure out now (else the worker's sweep does).")
@json_option
@click.pass_context
def privacy_erase(
    ctx: click.Context,
    tenant_id: uuid.UUID,
    emails: tuple[str, ...],
    refs: tuple[str, ...],
    visitors: tuple[str, ...],
    orders: tuple[str, ...],
    wait: bool,
    as_json: bool,
) -> None:
    """Erase everything derived from one customer; revenue and credits stay, frozen."""
    settings = operator_settings(ctx)
    order_refs = [_order(value) for value in orders]
    box = secret_box(settings)

    async def erase(pool) -> tuple[uuid.UUID, dict | None]:
        request_id, _ = await privacy_requests.submit(
            pool, box, tenant_id, kind="erasure", origin="cli",
            customer_refs=[*emails, *refs], visitor_ids=visitors, orders=order_refs,
        )
        counts = await process_request(pool, box, tenant_id, request_id) if wait else None
        return request_id, counts

    with operator_errors():
        try:
            request_id, counts = run_as_runtime(settings, erase)
        except SubjectError as exc:
            raise click.UsageError(str(exc)) from exc
    emit({"request_id": str(request_id), "completed": wait, "counts": counts or {}}, as_json)


@privacy.command("list")
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@click.option("--kind", type=click.Choice(requests.KINDS), default=None)
@json_option
@click.pass_context
def privacy_list(ctx: click.Context, tenant_id: uuid.UUID, kind: str | None, as_json: bool) -> None:
    """The tenant's privacy requests, newest first: kind, origin, received, completed, counts."""
    settings = operator_settings(ctx)

    async def listing(pool) -> list[dict]:
        async with tenant_transaction(pool, tenant_id) as conn:
            found = await requests.listing(conn, tenant_id, kind=kind, limit=1000)
        return [r.summary() for r in found]

    items = run_as_runtime(settings, listing)
    if as_json:
        emit({"items": items}, as_json=True)
    else:
        table(items, ("request_id", "kind", "origin", "received_at", "completed_at", "counts"))
