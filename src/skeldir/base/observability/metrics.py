"""Every metric of the system, declared once. Labels are bounded: never a tenant or any id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Webhook outcomes form a closed set so the label stays bounded.
WEBHOOK_OUTCOMES = (
    "accepted",
    "duplicate",
    "dead_lettered",
    "ping",
    "unauthorized",
    "too_large",
    "unsupported_media_type",
    "unavailable",
    "rate_limited",
    "error",
)

EVENTS_INGESTED = Counter("events_ingested_total", "Webhook events stored for the first time")
EVENTS_DUPLICATE = Counter(
    "events_duplicate_total", "Webhook deliveries of an event already stored"
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Verified deliveries kept as dead events because they could not be processed",
)
WEBHOOK_REQUESTS = Counter(
    "webhook_requests_total", "Webhook requests by provider and outcome", ["provider", "outcome"]
)
INGESTION_DURATION = Histogram(
    "ingestion_duration_seconds",
    "Time from request received to the ingest transaction committed",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CHAINS_SCHEDULED = Counter(
    "attribution_chains_scheduled_total",
    "Recompute chains published, by who scheduled them",
    ["trigger"],
)

CELERY_TASK_SUCCESS = Counter("celery_task_success_total", "Tasks that succeeded", ["task_name"])
CELERY_TASK_FAILURE = Counter("celery_task_failure_total", "Tasks that failed", ["task_name"])
CELERY_TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "Task run time",
    ["task_name"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
REPORT_REFRESH = Counter(
    "report_refresh_total", "Report refreshes by report and outcome", ["report", "outcome"]
)
ORDERS_ATTRIBUTED = Counter("orders_attributed_total", "Orders whose allocations a recompute wrote")

# kind: "webhooks", "collect" or "api" (see api.rate_limits); "exports" or "reparse" when a
# tenant already runs its share of long operations (see api.long_operations).
RATE_LIMITED = Counter(
    "rate_limited_total", "Requests refused because their tenant was over its rate limit", ["kind"]
)
RATE_LIMIT_FALLBACKS = Counter(
    "rate_limit_fallbacks_total",
    "Times the shared rate limits' Redis did not answer and the process limited on its own",
)
HEADERS_TOO_LARGE = Counter(
    "headers_too_large_total", "Requests refused with 431: request line and headers over the cap"
)
AUDIT_WRITE_FAILURES = Counter(
    "audit_write_failures_total", "API requests whose audit row could not be written"
)
# Operations: outcome is one of "replayed", "duplicate", "still_dead" (replay) or
# "changed", "unchanged", "failed" (re-parse).
DEAD_EVENTS_REPLAYED = Counter(
    "dead_events_replayed_total", "Dead events replayed, by outcome", ["outcome"]
)
EVENTS_REPARSED = Counter("events_reparsed_total", "Stored events parsed again, by outcome", ["outcome"])
EXPORT_ROWS = Counter("export_rows_total", "Rows streamed by exports", ["export", "format"])

# Spend connectors: one pull of one account's day range; outcome is one of CONNECTOR_OUTCOMES.
CONNECTOR_OUTCOMES = ("ok", "needs_reauth", "throttled", "error")
CONNECTOR_PULLS = Counter(
    "connector_pulls_total", "Spend connector pulls by platform and outcome", ["platform", "outcome"]
)
CONNECTOR_ROWS = Counter(
    "connector_rows_total", "Spend rows written by connector pulls", ["platform"]
)
CONNECTOR_LAG = Gauge(
    "connector_lag_seconds",
    "Seconds since the least recent last success among a platform's connectors",
    ["platform"],
)
