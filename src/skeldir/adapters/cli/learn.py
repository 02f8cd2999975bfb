"""`skeldir learn`: learn a tenant's Markov and Shapley weights now and re-attribute the orders
of the window they were learned from (the scheduled learner runs hourly)."""

from __future__ import annotations

import uuid

import click

from skeldir.adapters.cli.output import emit, json_option
from skeldir.adapters.cli.root import (
    follow_worker,
    main,
    mark_range,
    operator_errors,
    operator_settings,
    run_as_runtime,
    wait_options,
)
from skeldir.domains.attribution.learning import learn_weights


@main.command()
@click.option("--tenant", "tenant_id", required=True, type=click.UUID)
@wait_options("Follow the worker until the window's orders are attributed with the new weights.")
@json_option
@click.pass_context
def learn(
    ctx: click.Context, tenant_id: uuid.UUID, wait: bool, timeout: int, as_json: bool
) -> None:
    """Learn the tenant's Markov and Shapley weights now, then re-attribute the orders of the
    lookback window with them."""
    settings = operator_settings(ctx)

    async def learn_and_follow(pool) -> dict:
        learned = await learn_weights(pool, tenant_id)
        if not learned:
            raise click.ClickException(
                "no converting journey in the lookback window: nothing to learn from yet"
            )
        first_day, last_day = learned[0].window_start.date(), learned[0].window_end.date()
        _, marked = await mark_range(pool, tenant_id, first_day, last_day)
        if wait and marked:
            await follow_worker(pool, tenant_id, timeout)
        return {
            "learned": [
                {"model": w.model, "version": w.version, "journeys": w.paths,
                 "conversions": w.conversions, "weights": w.weights}
                for w in learned
            ],
            "first_day": first_day.isoformat(),
            "last_day": last_day.isoformat(),
            "orders_marked": marked,
            "re_attributed": wait,
        }

    with operator_errors():
        result = run_as_runtime(settings, learn_and_follow)
    if as_json:
        emit(result, as_json=True)
        return
    for weights in result["learned"]:
        shares = ", ".join(
            f"{channel} {share:.1%}"
            for channel, share in sorted(weights["weights"].items(), key=lambda kv: -kv[1])
        )
        click.echo(
            f"{weights['model']} v{weights['version']} from {weights['journeys']} journeys"
            f" ({weights['conversions']} converting): {shares}"
        )
    done = "re-attributed" if wait else "marked; the worker re-attributes them"
    click.echo(
        f"{result['orders_marked']} orders of {result['first_day']} to {result['last_day']} {done}"
    )
