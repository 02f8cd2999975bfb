"""The Celery application: queues, reliability settings, the sweeper schedule."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from skeldir.base.config import Settings

# Connector pulls wait on ad platforms: their own queue, so they never delay the chains.
QUEUE_NAMES = ("attribution", "reporting", "maintenance", "connectors")
TASK_MODULES = (
    "skeldir.adapters.tasks.attribution",
    "skeldir.adapters.tasks.reporting",
    "skeldir.adapters.tasks.maintenance",
    "skeldir.adapters.tasks.connectors",
    "skeldir.adapters.tasks.privacy",
    "skeldir.adapters.tasks.signals",
)


def create_celery(settings: Settings) -> Celery:
    app = Celery("skeldir", broker=settings.broker_url, include=list(TASK_MODULES))
    app.conf.update(
        task_queues=[Queue(settings.queue(name)) for name in QUEUE_NAMES],
        task_default_queue=settings.queue("maintenance"),
        task_routes={
            "attribution.*": {"queue": settings.queue("attribution")},
            "reporting.*": {"queue": settings.queue("reporting")},
            "maintenance.*": {"queue": settings.queue("maintenance")},
            "connectors.*": {"queue": settings.queue("connectors")},
        },
        # Fire-and-forget: a result backend would cap throughput and is never read.
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600, "socket_connect_timeout": 2},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        beat_schedule={
            "sweep-pending-orders": {
                "task": "maintenance.sweep_pending",
                "schedule": settings.sweep_interval_seconds,
                "options": {"expires": settings.sweep_interval_seconds * 2},
            },
            # Requests whose task was lost (broker down, worker killed).
            "sweep-privacy-requests": {
                "task": "maintenance.privacy_sweep",
                "schedule": 300,
                "options": {"expires": 300},
            },
            "apply-retention": {
                "task": "maintenance.retention",
                "schedule": 86_400,
                "options": {"expires": 86_400},
            },
            "learn-model-weights": {
                "task": "maintenance.learn_weights",
                "schedule": settings.learn_interval_seconds,
                "options": {"expires": settings.learn_interval_seconds},
            },
            "pull-connectors-recent-days": {
                "task": "connectors.pull_recent",
                "schedule": settings.connector_recent_interval_seconds,
                "options": {"expires": settings.connector_recent_interval_seconds},
            },
            "pull-connectors-restated-days": {
                "task": "connectors.pull_restated",
                "schedule": settings.connector_restate_interval_seconds,
                "options": {"expires": settings.connector_restate_interval_seconds},
            },
            "continue-connector-backfills": {
                "task": "connectors.continue_backfills",
                "schedule": settings.connector_backfill_interval_seconds,
                "options": {"expires": settings.connector_backfill_interval_seconds},
            },
        },
        skeldir_settings=settings,
    )
    return app
