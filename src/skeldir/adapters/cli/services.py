"""Running the system and its database: `up`, `api`, `worker` and `migrate`.

Every process loads every command of the CLI, so each command imports what it runs itself:
the worker never holds the web application (FastAPI, uvicorn: about 20 MiB) nor the embedded
servers, and the API never holds Celery's worker and beat."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from skeldir.adapters.cli.group import settings_of
from skeldir.adapters.cli.output import emit, json_option
from skeldir.adapters.cli.root import main, operator_settings
from skeldir.base.observability.logging import configure_logging


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
    from skeldir.deployment.launcher import run_up

    settings = settings_of(ctx)
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
    import uvicorn

    from skeldir.adapters.api.header_cap import capped_http_protocol
    from skeldir.adapters.app import create_app

    settings = settings_of(ctx)
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
    from skeldir.adapters.tasks.worker import run_worker

    settings = settings_of(ctx)
    if not settings.worker_database_url:
        raise click.ClickException(
            "SKELDIR_WORKER_DATABASE_URL is not set: the worker connects as a role of its own"
            " (docs/operations.md)"
        )
    configure_logging(settings.log_level, component="worker")
    sys.exit(run_worker(settings, beat=beat))


@main.command("migrate")
@json_option
@click.pass_context
def migrate_command(ctx: click.Context, as_json: bool) -> None:
    """Apply database migrations as the owner role."""
    # Alembic and SQLAlchemy: about 20 MiB.
    from skeldir.deployment import migrate

    settings = operator_settings(ctx)
    migrate.upgrade(settings)
    emit({"migrations": "at head", "head": migrate.heads(settings)}, as_json)
