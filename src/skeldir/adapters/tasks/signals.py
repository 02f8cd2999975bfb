"""Task metrics and log lines for every task, from Celery's signals."""

from __future__ import annotations

import logging
import time

from celery.signals import task_failure, task_postrun, task_prerun

from skeldir.base.observability import metrics

log = logging.getLogger("skeldir.adapters.tasks")
_started: dict[str, float] = {}


def _tenant_of(args: tuple | list | None) -> str | None:
    return str(args[0]) if args else None


@task_prerun.connect
def _on_prerun(task_id: str, task, args=None, **_kw) -> None:
    _started[task_id] = time.perf_counter()
    log.info(
        "task_started",
        extra={"task_name": task.name, "tenant_id": _tenant_of(args), "task_id": task_id},
    )


@task_postrun.connect
def _on_postrun(task_id: str, task, args=None, state=None, **_kw) -> None:
    started = _started.pop(task_id, None)
    duration = time.perf_counter() - started if started is not None else 0.0
    metrics.CELERY_TASK_DURATION.labels(task_name=task.name).observe(duration)
    context = {
        "task_name": task.name,
        "tenant_id": _tenant_of(args),
        "task_id": task_id,
        "duration_ms": round(duration * 1000, 2),
        "state": state,
    }
    if state == "SUCCESS":
        metrics.CELERY_TASK_SUCCESS.labels(task_name=task.name).inc()
        log.info("task_succeeded", extra=context)
    elif state == "RETRY":
        log.warning("task_retrying", extra=context)


@task_failure.connect
def _on_failure(task_id: str, exception: BaseException, sender=None, args=None, **_kw) -> None:
    name = sender.name if sender else "unknown"
    metrics.CELERY_TASK_FAILURE.labels(task_name=name).inc()
    log.error(
        "task_failed",
        extra={
            "task_name": name,
            "tenant_id": _tenant_of(args),
            "task_id": task_id,
            "error": type(exception).__name__,
        },
    )
