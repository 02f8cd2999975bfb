"""Run a Celery worker (optionally with beat) and its metrics endpoint."""

from __future__ import annotations

import gc
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from celery import Celery
from celery.beat import EmbeddedService
from celery.signals import worker_init, worker_ready, worker_shutdown
from celery.utils.log import mlevel
from celery.utils.nodenames import default_nodename, host_format
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from skeldir.adapters.tasks.celery_app import QUEUE_NAMES, create_celery
from skeldir.base.config import Settings


class _MetricsHandler(BaseHTTPRequestHandler):
    ready = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/metrics"):
            body, status, media = generate_latest(), 200, CONTENT_TYPE_LATEST
        elif self.path.startswith("/healthz"):
            ok = self.ready.is_set()
            body = b'{"status": "ok"}' if ok else b'{"status": "starting"}'
            status, media = (200 if ok else 503), "application/json"
        else:
            body, status, media = b"not found", 404, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def run_worker(settings: Settings, *, beat: bool) -> int:
    """Run until shut down; the worker's exit code."""
    app = create_celery(settings)
    servers: list[ThreadingHTTPServer] = []

    def serve_metrics(**_kw: object) -> None:
        server = ThreadingHTTPServer(
            (settings.worker_metrics_host, settings.worker_metrics_port), _MetricsHandler
        )
        servers.append(server)
        threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
        _MetricsHandler.ready.set()

    def stop_metrics(**_kw: object) -> None:
        for server in servers:
            server.shutdown()
            server.server_close()

    def freeze_startup(**_kw: object) -> None:
        # What startup built (modules, Celery's app and registry) lives as long as the process:
        # frozen, full collections no longer walk it.
        gc.collect()
        gc.freeze()

    worker_init.connect(freeze_startup, weak=False)
    worker_ready.connect(serve_metrics, weak=False)
    worker_shutdown.connect(stop_metrics, weak=False)
    if beat:
        _run_beat_in_a_thread(app, _schedule_file(settings))

    # Started as a program without Celery's command line (`worker_main`), whose click
    # commands, plugins and REPL (prompt_toolkit) hold about 9 MiB for parsing these options.
    worker = app.Worker(
        hostname=host_format(default_nodename(f"skeldir-{settings.queue_namespace}@%h")),
        queues=[settings.queue(name) for name in QUEUE_NAMES],
        loglevel=mlevel(settings.log_level.upper()),
        # One process runs the tasks, so its metrics are the endpoint's; scale with more workers.
        pool_cls="solo",
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
    return worker.exitcode


def _run_beat_in_a_thread(app: Celery, schedule_file: Path) -> None:
    """Beat as a thread of the worker rather than Celery's `--beat` child process: a fork holds
    a second copy of every page either process writes (about 97 MiB RSS, 53 MiB PSS at rest),
    for a loop that wakes once a second to publish a few tasks. A thread also ends with the
    worker, even a killed one."""
    clock = EmbeddedService(app, thread=True, schedule_filename=str(schedule_file))
    # Started once the worker consumes, stopped (its schedule file synced) as it shuts down.
    worker_ready.connect(lambda **_kw: clock.start(), weak=False)
    worker_shutdown.connect(lambda **_kw: clock.stop(), weak=False)


def _schedule_file(settings: Settings) -> Path:
    data_dir = Path(settings.data_dir)
    schedule_dir = data_dir if data_dir.exists() else Path(tempfile.gettempdir())
    return schedule_dir / f"celerybeat-{settings.queue_namespace}"
