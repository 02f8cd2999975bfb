"""`skeldir demo`: a demo tenant and a day of its shop's traffic, sent to a running `up`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import click
import httpx
import psycopg

from skeldir.adapters.cli.output import emit
from skeldir.adapters.cli.root import main, operator_errors, operator_settings
from skeldir.operations.demo.deliveries import new_secrets
from skeldir.operations.demo.journeys import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_VISITORS,
    Day,
    Identify,
    demo_period,
)
from skeldir.operations.demo.sender import (
    DemoError,
    check_api,
    learn_weights,
    reattribute,
    send_spend,
    send_touchpoints,
    send_webhooks,
    wait_until_reported,
)
from skeldir.operations.demo.tenant import DemoTenant, create_demo_tenant


@main.command()
@click.option(
    "--visitors",
    default=60,
    show_default=True,
    type=click.IntRange(MIN_VISITORS, 5000),
    help="Visitors on an ordinary day (more on weekdays and later days); about 3 in 10 buy.",
)
@click.option(
    "--days",
    default=DEFAULT_DAYS,
    show_default=True,
    type=click.IntRange(1, MAX_DAYS),
    help="Days of traffic, orders and ad spend, ending today.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the generated day: the same seed gives the same visitors, orders and amounts"
    " [random, printed].",
)
@click.option(
    "--timeout",
    default=120,
    show_default=True,
    type=click.IntRange(1),
    help="Seconds to wait for every order to be attributed.",
)
@click.option("--name", default="Demo shop", show_default=True, help="The demo tenant's name.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print only {tenant_id, api_key, dashboard_url} as JSON; progress goes to stderr.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    visitors: int,
    days: int,
    seed: int | None,
    timeout: int,
    name: str,
    as_json: bool,
) -> None:
    """Create a demo tenant with a source per platform, send it days of ad spend, signed
    webhooks and touchpoints over HTTP, wait until every order is attributed, and print the
    dashboard URL."""
    settings = operator_settings(ctx)
    public_url = settings.public_url.rstrip("/")
    seed = secrets.randbelow(1_000_000) if seed is None else seed
    with _demo_errors(), httpx.Client(timeout=15.0) as client:
        check_api(client, public_url)
        signing_secrets = new_secrets()
        tenant = create_demo_tenant(settings, name, signing_secrets)
        _say(
            f"tenant {tenant.tenant_id} with a source for each of {', '.join(tenant.webhook_urls)}"
        )
        day = demo_period(seed, visitors, datetime.now(timezone.utc), days)
        _describe(day, seed, days)
        try:
            _send_and_wait(client, public_url, tenant, day, signing_secrets, timeout)
        except DemoError as exc:
            raise DemoError(
                f"{exc}\nThe demo tenant {tenant.tenant_id} keeps what was sent; for a key to"
                f" look at it: skeldir key create --tenant {tenant.tenant_id} --scope admin"
            ) from exc
    emit(
        {
            "tenant_id": str(tenant.tenant_id),
            "api_key": tenant.api_key,
            "dashboard_url": f"{public_url}/#key={tenant.api_key}",
        },
        as_json,
    )
    if not as_json:
        click.echo(
            "The key rides in the URL fragment (after #), which the browser never sends to any"
            " server. It is an admin key for the demo tenant: shown once, stored hashed."
        )


def _send_and_wait(
    client: httpx.Client,
    public_url: str,
    tenant: DemoTenant,
    day: Day,
    signing_secrets: dict[str, str],
    timeout: int,
) -> None:
    started = time.monotonic()
    _say(f"loaded {send_spend(client, public_url, tenant.api_key, day)} rows of ad spend")
    _say(f"sent {send_touchpoints(client, public_url, tenant.collect_key, day)} touchpoints")
    sent = send_webhooks(client, day, tenant.webhook_urls, signing_secrets)
    by_source = ", ".join(f"{source} {count}" for source, count in sorted(sent.items()))
    _say(f"sent {sum(sent.values())} signed webhooks ({by_source})")

    def progress(to_attribute: int, to_report: int) -> None:
        if to_attribute or to_report:
            _say(
                f"waiting for the worker: {to_attribute} orders to attribute, {to_report} to report"
            )
        else:
            _say(f"every order attributed and reported ({time.monotonic() - started:.1f}s)")

    wait_until_reported(client, public_url, tenant.api_key, timeout, progress)
    learned = learn_weights(client, public_url, tenant.api_key)
    first = min(order.ordered_at for order in day.orders).date()
    today = datetime.now(timezone.utc).date()
    marked = reattribute(client, public_url, tenant.api_key, first, today)
    _say(
        f"learned the Markov and Shapley weights from {learned['learned'][0]['journeys']}"
        f" journeys; re-attributing {marked} orders under all eight models"
    )
    wait_until_reported(client, public_url, tenant.api_key, timeout, progress)


def _describe(day: Day, seed: int, days: int) -> None:
    visits = sum(not isinstance(t, Identify) for t in day.touchpoints)
    visitors = len({t.visitor_id for t in day.touchpoints})
    currencies = ", ".join(sorted(day.net_by_currency()))
    refunds = sum(len(order.refunds) for order in day.orders)
    returning = sum(order.returning for order in day.orders)
    paypal = sum(order.checkout == "paypal" for order in day.orders)
    _say(
        f"seed {seed}: {_count(days, 'day')}, {visitors} visitors, {visits} visits,"
        f" {len(day.orders)} orders ({currencies}; {returning} from returning customers),"
        f" {_count(refunds, 'refund')}"
    )
    _say(
        "PayPal signs with its own certificate, which nothing local can produce:"
        f" {_count(paypal, 'PayPal order')} go through the Standard Webhooks source"
        " (see docs/demo.md)"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _say(text: str) -> None:
    click.echo(f"demo: {text}", err=True)


@contextmanager
def _demo_errors() -> Iterator[None]:
    """A stopped system or missing key file as one line (DemoError is a RuntimeError)."""
    with operator_errors():
        try:
            yield
        except (RuntimeError, psycopg.OperationalError) as exc:
            raise click.ClickException(str(exc).strip()) from exc
