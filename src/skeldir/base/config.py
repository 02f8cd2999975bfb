"""The one Settings object. Read from the environment once, passed down explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".skeldir")
    # Runtime role (API and worker): NOSUPERUSER NOBYPASSRLS, DML only.
    database_url: str | None = None
    # Owner role: migrations and operator commands.
    owner_database_url: str | None = None
    broker_url: str | None = None
    # Base64 key that encrypts signing secrets at rest; read from the data dir when unset.
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    # Queue names are prefixed so several deployments can share one broker.
    queue_namespace: str = "skeldir"
    max_body_bytes: int = 1024 * 1024
    # Request line and headers together; more is answered 431 before it is parsed further.
    max_header_bytes: int = 64 * 1024
    # The API's pool for reads, reports, exports and operations; webhooks have a pool of their
    # own so that no amount of reading can starve ingest.
    db_pool_size: int = 32
    db_ingest_pool_size: int = 8
    # A request that finds every connection taken waits this long, then gets 503 + Retry-After.
    db_acquire_timeout_seconds: float = 5.0
    # Server-side bounds of every API session (0 turns one off).
    db_statement_timeout_seconds: float = 60.0
    db_idle_in_transaction_timeout_seconds: float = 15.0
    # Exports and re-parses running at once per tenant and API process; more are refused (429).
    long_operations_per_tenant: int = 2
    # An export is read into a spooled file (memory up to this size, then disk) and only then
    # sent, so no transaction waits on a client; a send that stalls this long ends the response.
    export_spool_memory_bytes: int = 4 * 1024 * 1024
    export_send_timeout_seconds: float = 30.0
    recompute_batch_size: int = 5000
    # Batches one recompute task attributes before it queues its continuation.
    recompute_batches_per_task: int = 200
    # How long one recompute or refresh task works for one tenant before it queues the rest
    # behind other tenants' work (at least one batch): a large backfill delays another
    # tenant's fresh order by about this much per worker.
    task_slice_seconds: float = 0.5
    # Dirty orders per report refresh transaction, and transactions per refresh task before it
    # queues its continuation.
    refresh_batch_size: int = 2000
    refresh_batches_per_task: int = 100
    sweep_interval_seconds: float = 5.0
    # A pending order older than this with no chain queued is rescheduled by the sweeper.
    sweep_grace_seconds: float = 5.0
    # A chain queued this long ago without starting is presumed lost (broker restart, lost message).
    chain_stale_seconds: float = 60.0
    source_cache_seconds: float = 30.0
    # How often the data-driven models' channel weights are learned again.
    learn_interval_seconds: float = 3600.0
    # Group commit of webhook ingests: at most this many events per transaction, this long
    # (ms) to gather a batch while the database is idle, this many batches at once.
    ingest_batch_max: int = 64
    ingest_batch_wait_ms: float = 0.0
    ingest_batches_in_flight: int = 2
    # Per tenant and per API process (N processes admit N times these); a rate of 0 turns
    # a limit off. The webhook limit is above what one process ingests on 2 cores (~4,000/s):
    # one shop's sale day must not look like an attack.
    rate_limit_webhooks_per_second: float = 10000.0
    rate_limit_webhooks_burst: float = 20000.0
    # Touchpoints, posted from shoppers' browsers with the public collect key.
    rate_limit_collect_per_second: float = 1000.0
    rate_limit_collect_burst: float = 2000.0
    rate_limit_api_per_second: float = 50.0
    rate_limit_api_burst: float = 100.0
    # The API's /metrics: on the public port when the port is 0; else only on this listener
    # (for example 127.0.0.1, reached by the scraper alone), and the public port answers 404.
    api_metrics_host: str = "127.0.0.1"
    api_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 8001
    log_level: str = "INFO"
    # Longest wait for PostgreSQL to answer a new connection of an operator command or doctor:
    # a host that accepts TCP but never answers must not hang them.
    db_connect_timeout_seconds: int = 10
    # A tenant's first Markov and Shapley weights are learned as soon as its lookback window
    # holds this many converting journeys, not at the next scheduled run (0: wait for it).
    learn_min_conversions: int = 20

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            data_dir=Path(_env("SKELDIR_DATA_DIR", ".skeldir")),
            database_url=_env("SKELDIR_DATABASE_URL"),
            owner_database_url=_env("SKELDIR_OWNER_DATABASE_URL"),
            broker_url=_env("SKELDIR_BROKER_URL"),
            secret_key=_env("SKELDIR_SECRET_KEY"),
            public_url=_env("SKELDIR_PUBLIC_URL", cls.public_url),
            queue_namespace=_env("SKELDIR_QUEUE_NAMESPACE", cls.queue_namespace),
            max_body_bytes=int(_env("SKELDIR_MAX_BODY_BYTES", str(cls.max_body_bytes))),
            max_header_bytes=int(_env("SKELDIR_MAX_HEADER_BYTES", str(cls.max_header_bytes))),
            db_pool_size=int(_env("SKELDIR_DB_POOL_SIZE", str(cls.db_pool_size))),
            db_ingest_pool_size=int(
                _env("SKELDIR_DB_INGEST_POOL_SIZE", str(cls.db_ingest_pool_size))
            ),
            db_acquire_timeout_seconds=float(
                _env("SKELDIR_DB_ACQUIRE_TIMEOUT_SECONDS", str(cls.db_acquire_timeout_seconds))
            ),
            db_statement_timeout_seconds=float(
                _env("SKELDIR_DB_STATEMENT_TIMEOUT_SECONDS", str(cls.db_statement_timeout_seconds))
            ),
            db_idle_in_transaction_timeout_seconds=float(
                _env(
                    "SKELDIR_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
                    str(cls.db_idle_in_transaction_timeout_seconds),
                )
            ),
            long_operations_per_tenant=int(
                _env("SKELDIR_LONG_OPERATIONS_PER_TENANT", str(cls.long_operations_per_tenant))
            ),
            export_spool_memory_bytes=int(
                _env("SKELDIR_EXPORT_SPOOL_MEMORY_BYTES", str(cls.export_spool_memory_bytes))
            ),
            export_send_timeout_seconds=float(
                _env("SKELDIR_EXPORT_SEND_TIMEOUT_SECONDS", str(cls.export_send_timeout_seconds))
            ),
            recompute_batch_size=int(
                _env("SKELDIR_RECOMPUTE_BATCH_SIZE", str(cls.recompute_batch_size))
            ),
            recompute_batches_per_task=int(
                _env("SKELDIR_RECOMPUTE_BATCHES_PER_TASK", str(cls.recompute_batches_per_task))
            ),
            task_slice_seconds=float(
                _env("SKELDIR_TASK_SLICE_SECONDS", str(cls.task_slice_seconds))
            ),
            refresh_batch_size=int(
                _env("SKELDIR_REFRESH_BATCH_SIZE", str(cls.refresh_batch_size))
            ),
            refresh_batches_per_task=int(
                _env("SKELDIR_REFRESH_BATCHES_PER_TASK", str(cls.refresh_batches_per_task))
            ),
            sweep_interval_seconds=float(
                _env("SKELDIR_SWEEP_INTERVAL_SECONDS", str(cls.sweep_interval_seconds))
            ),
            sweep_grace_seconds=float(
                _env("SKELDIR_SWEEP_GRACE_SECONDS", str(cls.sweep_grace_seconds))
            ),
            chain_stale_seconds=float(
                _env("SKELDIR_CHAIN_STALE_SECONDS", str(cls.chain_stale_seconds))
            ),
            source_cache_seconds=float(
                _env("SKELDIR_SOURCE_CACHE_SECONDS", str(cls.source_cache_seconds))
            ),
            learn_interval_seconds=float(
                _env("SKELDIR_LEARN_INTERVAL_SECONDS", str(cls.learn_interval_seconds))
            ),
            ingest_batch_max=int(_env("SKELDIR_INGEST_BATCH_MAX", str(cls.ingest_batch_max))),
            ingest_batch_wait_ms=float(
                _env("SKELDIR_INGEST_BATCH_WAIT_MS", str(cls.ingest_batch_wait_ms))
            ),
            ingest_batches_in_flight=int(
                _env("SKELDIR_INGEST_BATCHES_IN_FLIGHT", str(cls.ingest_batches_in_flight))
            ),
            rate_limit_webhooks_per_second=float(
                _env(
                    "SKELDIR_RATE_LIMIT_WEBHOOKS_PER_SECOND",
                    str(cls.rate_limit_webhooks_per_second),
                )
            ),
            rate_limit_webhooks_burst=float(
                _env("SKELDIR_RATE_LIMIT_WEBHOOKS_BURST", str(cls.rate_limit_webhooks_burst))
            ),
            rate_limit_collect_per_second=float(
                _env(
                    "SKELDIR_RATE_LIMIT_COLLECT_PER_SECOND", str(cls.rate_limit_collect_per_second)
                )
            ),
            rate_limit_collect_burst=float(
                _env("SKELDIR_RATE_LIMIT_COLLECT_BURST", str(cls.rate_limit_collect_burst))
            ),
            rate_limit_api_per_second=float(
                _env("SKELDIR_RATE_LIMIT_API_PER_SECOND", str(cls.rate_limit_api_per_second))
            ),
            rate_limit_api_burst=float(
                _env("SKELDIR_RATE_LIMIT_API_BURST", str(cls.rate_limit_api_burst))
            ),
            api_metrics_host=_env("SKELDIR_API_METRICS_HOST", cls.api_metrics_host),
            api_metrics_port=int(_env("SKELDIR_API_METRICS_PORT", str(cls.api_metrics_port))),
            worker_metrics_host=_env("SKELDIR_WORKER_METRICS_HOST", cls.worker_metrics_host),
            worker_metrics_port=int(
                _env("SKELDIR_WORKER_METRICS_PORT", str(cls.worker_metrics_port))
            ),
            log_level=_env("SKELDIR_LOG_LEVEL", cls.log_level),
            db_connect_timeout_seconds=int(
                _env("SKELDIR_DB_CONNECT_TIMEOUT_SECONDS", str(cls.db_connect_timeout_seconds))
            ),
            learn_min_conversions=int(
                _env("SKELDIR_LEARN_MIN_CONVERSIONS", str(cls.learn_min_conversions))
            ),
        )
        return replace(base, **overrides) if overrides else base

    @property
    def external_services(self) -> bool:
        """True when PostgreSQL and the broker are given, so nothing embedded is started."""
        return bool(self.database_url and self.owner_database_url and self.broker_url)

    @property
    def runtime_role(self) -> str:
        return _user_of(self.database_url, "skeldir_app")

    @property
    def owner_role(self) -> str:
        return _user_of(self.owner_database_url, "skeldir_owner")

    def queue(self, name: str) -> str:
        return f"{self.queue_namespace}.{name}"

    def as_env(self) -> dict[str, str]:
        """The environment that gives a child process these same settings."""
        pairs = {
            "SKELDIR_DATA_DIR": str(self.data_dir),
            "SKELDIR_DATABASE_URL": self.database_url,
            "SKELDIR_OWNER_DATABASE_URL": self.owner_database_url,
            "SKELDIR_BROKER_URL": self.broker_url,
            "SKELDIR_SECRET_KEY": self.secret_key,
            "SKELDIR_PUBLIC_URL": self.public_url,
            "SKELDIR_QUEUE_NAMESPACE": self.queue_namespace,
            "SKELDIR_MAX_BODY_BYTES": str(self.max_body_bytes),
            "SKELDIR_MAX_HEADER_BYTES": str(self.max_header_bytes),
            "SKELDIR_DB_POOL_SIZE": str(self.db_pool_size),
            "SKELDIR_DB_INGEST_POOL_SIZE": str(self.db_ingest_pool_size),
            "SKELDIR_DB_ACQUIRE_TIMEOUT_SECONDS": str(self.db_acquire_timeout_seconds),
            "SKELDIR_DB_STATEMENT_TIMEOUT_SECONDS": str(self.db_statement_timeout_seconds),
            "SKELDIR_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": str(
                self.db_idle_in_transaction_timeout_seconds
            ),
            "SKELDIR_LONG_OPERATIONS_PER_TENANT": str(self.long_operations_per_tenant),
            "SKELDIR_EXPORT_SPOOL_MEMORY_BYTES": str(self.export_spool_memory_bytes),
            "SKELDIR_EXPORT_SEND_TIMEOUT_SECONDS": str(self.export_send_timeout_seconds),
            "SKELDIR_RECOMPUTE_BATCH_SIZE": str(self.recompute_batch_size),
            "SKELDIR_RECOMPUTE_BATCHES_PER_TASK": str(self.recompute_batches_per_task),
            "SKELDIR_TASK_SLICE_SECONDS": str(self.task_slice_seconds),
            "SKELDIR_REFRESH_BATCH_SIZE": str(self.refresh_batch_size),
            "SKELDIR_REFRESH_BATCHES_PER_TASK": str(self.refresh_batches_per_task),
            "SKELDIR_SWEEP_INTERVAL_SECONDS": str(self.sweep_interval_seconds),
            "SKELDIR_SWEEP_GRACE_SECONDS": str(self.sweep_grace_seconds),
            "SKELDIR_CHAIN_STALE_SECONDS": str(self.chain_stale_seconds),
            "SKELDIR_SOURCE_CACHE_SECONDS": str(self.source_cache_seconds),
            "SKELDIR_LEARN_INTERVAL_SECONDS": str(self.learn_interval_seconds),
            "SKELDIR_INGEST_BATCH_MAX": str(self.ingest_batch_max),
            "SKELDIR_INGEST_BATCH_WAIT_MS": str(self.ingest_batch_wait_ms),
            "SKELDIR_INGEST_BATCHES_IN_FLIGHT": str(self.ingest_batches_in_flight),
            "SKELDIR_RATE_LIMIT_WEBHOOKS_PER_SECOND": str(self.rate_limit_webhooks_per_second),
            "SKELDIR_RATE_LIMIT_WEBHOOKS_BURST": str(self.rate_limit_webhooks_burst),
            "SKELDIR_RATE_LIMIT_COLLECT_PER_SECOND": str(self.rate_limit_collect_per_second),
            "SKELDIR_RATE_LIMIT_COLLECT_BURST": str(self.rate_limit_collect_burst),
            "SKELDIR_RATE_LIMIT_API_PER_SECOND": str(self.rate_limit_api_per_second),
            "SKELDIR_RATE_LIMIT_API_BURST": str(self.rate_limit_api_burst),
            "SKELDIR_API_METRICS_HOST": self.api_metrics_host,
            "SKELDIR_API_METRICS_PORT": str(self.api_metrics_port),
            "SKELDIR_WORKER_METRICS_HOST": self.worker_metrics_host,
            "SKELDIR_WORKER_METRICS_PORT": str(self.worker_metrics_port),
            "SKELDIR_LOG_LEVEL": self.log_level,
            "SKELDIR_DB_CONNECT_TIMEOUT_SECONDS": str(self.db_connect_timeout_seconds),
            "SKELDIR_LEARN_MIN_CONVERSIONS": str(self.learn_min_conversions),
        }
        return {k: v for k, v in pairs.items() if v is not None}


def _user_of(url: str | None, default: str) -> str:
    if not url:
        return default
    return urlsplit(url).username or default
