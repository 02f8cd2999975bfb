"""Run a Celery worker (optionally with beat) and its metrics endpoint."""

from __future__ import annotations

import gc
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from celery.signals import beat_init, worker_init, worker_ready, worker_shutdown
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from skeldir.adapters.tasks.celery_app import QUEUE_NAMES, create_celery
from skeldir.base.config import Settings
from skeldir.embedded.process import die_with_parent


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


def run_worker(settings: Settings, *, beat: bool) -> None:
    app = create_celery(settings)
    servers: list[ThreadingHTTPServer] = []

    # Bound once the worker is ready, after beat has forked, so beat never holds the port.
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
        # frozen, full collections no longer walk it. Done before beat forks, so neither
        # process's collector writes those pages and they stay shared between the two.
        gc.collect()
        gc.freeze()

    worker_init.connect(freeze_startup, weak=False)
    worker_ready.connect(serve_metrics, weak=False)
    worker_shutdown.connect(stop_metrics, weak=False)
    # Beat runs in a child of the worker: it must end with the worker, even a killed one.
    beat_init.connect(lambda **_kw: die_with_parent(), weak=False)

    argv = [
        "worker",
        "--loglevel",
        settings.log_level,
        "--queues",
        ",".join(settings.queue(name) for name in QUEUE_NAMES),
        "--hostname",
        f"skeldir-{settings.queue_namespace}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    # One process runs the tasks, so its metrics are the endpoint's; scale with more workers.
    argv += ["--pool", "solo"]
    if beat:
        schedule_dir = (
            Path(settings.data_dir)
            if Path(settings.data_dir).exists()
            else Path(tempfile.gettempdir())
        )
        argv += [
            "--beat",
            "--schedule",
            str(schedule_dir / f"celerybeat-{settings.queue_namespace}"),
        ]
    app.worker_main(argv)
