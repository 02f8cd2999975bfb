"""The one Settings object. Read from the environment once, passed down explicitly."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import get_type_hints
from urllib.parse import urlsplit

from pydantic import create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV_PREFIX = "SKELDIR_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".skeldir")
    # Runtime role (the API): NOSUPERUSER NOBYPASSRLS, DML only.
    database_url: str | None = None
    # Worker role (the Celery worker and beat): the runtime role's DML under the same row-level
    # security, plus the few functions that list tenant ids across tenants for the schedules.
    worker_database_url: str | None = None
    # Owner role: migrations and operator commands.
    owner_database_url: str | None = None
    # The runtime role on a streaming replica (hot standby) of that database: reports, exports
    # and listings read there while it lags at most `read_replica_max_lag_seconds`; writes, the
    # webhook path and key checks stay on the primary. Unset: everything on the primary.
    read_database_url: str | None = None
    read_replica_max_lag_seconds: float = 2.0
    read_replica_check_seconds: float = 0.5
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
    # Per tenant and per API process (N processes admit N times these) unless shared through
    # Redis (below); a rate of 0 turns a limit off. The webhook limit is above what one process ingests on 2 cores (~4,000/s):
    # one shop's sale day must not look like an attack.
    rate_limit_webhooks_per_second: float = 10000.0
    rate_limit_webhooks_burst: float = 20000.0
    # Touchpoints, posted from shoppers' browsers with the public collect key.
    rate_limit_collect_per_second: float = 1000.0
    rate_limit_collect_burst: float = 2000.0
    rate_limit_api_per_second: float = 50.0
    rate_limit_api_burst: float = 100.0
    # Several API processes share each tenant's buckets through this Redis (redis:// or
    # unix://), so together they admit the rates above. A Redis that does not answer within
    # the timeout is skipped (each process limits on its own) and asked again after the pause.
    rate_limit_redis_url: str | None = None
    rate_limit_redis_timeout_seconds: float = 0.05
    rate_limit_redis_retry_seconds: float = 5.0
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
    # Spend connectors (docs/connectors.md). Each platform's base URL, API version included, is
    # a setting so that a proxy or a test server can stand in for the platform.
    connector_meta_base_url: str = "https://graph.facebook.com/v23.0"
    connector_google_ads_base_url: str = "https://googleads.googleapis.com/v21"
    connector_google_oauth_token_url: str = "https://oauth2.googleapis.com/token"
    connector_tiktok_base_url: str = "https://business-api.tiktok.com/open_api/v1.3"
    # Every platform call: connect, read and write timeouts in seconds.
    connector_timeout_seconds: float = 60.0
    # Tries per call (timeouts, 5xx, throttling); the first retry waits the backoff, then
    # doubling; a platform's own delay is waited when it is at most the maximum wait, and a
    # longer one ends the pull (the next scheduled pull tries again).
    connector_attempts: int = 5
    connector_backoff_seconds: float = 2.0
    connector_max_wait_seconds: float = 300.0
    # Meta: a range longer than this runs as an asynchronous report job.
    connector_meta_sync_days: int = 7
    # A backfill pulls and commits this many days at a time, then records where it is.
    connector_backfill_chunk_days: int = 7
    # Beat: today and yesterday this often; the last `connector_restate_days` days once a day.
    connector_recent_interval_seconds: float = 3600.0
    connector_restate_interval_seconds: float = 86400.0
    connector_restate_days: int = 28
    # How often the worker takes the next chunk of every unfinished backfill (one per connector).
    connector_backfill_interval_seconds: float = 300.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """These settings as the environment gives them (SKELDIR_<FIELD>), then the overrides."""
        return cls(**{**_environment_model()().model_dump(), **overrides})

    @property
    def external_services(self) -> bool:
        """True when PostgreSQL and the broker are given, so nothing embedded is started."""
        return bool(
            self.database_url
            and self.worker_database_url
            and self.owner_database_url
            and self.broker_url
        )

    @property
    def runtime_role(self) -> str:
        return _user_of(self.database_url, "skeldir_app")

    @property
    def worker_role(self) -> str:
        return _user_of(self.worker_database_url, "skeldir_worker")

    @property
    def owner_role(self) -> str:
        return _user_of(self.owner_database_url, "skeldir_owner")

    def queue(self, name: str) -> str:
        return f"{self.queue_namespace}.{name}"

    def as_env(self) -> dict[str, str]:
        """The environment that gives a child process these same settings."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return {_ENV_PREFIX + k.upper(): str(v) for k, v in values.items() if v is not None}


def _user_of(url: str | None, default: str) -> str:
    if not url:
        return default
    return urlsplit(url).username or default


class _FromEnvironment(BaseSettings):
    # An empty variable means unset, as in a shell's `SKELDIR_X= skeldir up`.
    model_config = SettingsConfigDict(env_prefix=_ENV_PREFIX, env_ignore_empty=True)


@cache
def _environment_model() -> type[BaseSettings]:
    """The settings library's reader, declared from Settings' own fields, types and defaults."""
    types = get_type_hints(Settings)
    declared = {field.name: (types[field.name], field.default) for field in fields(Settings)}
    return create_model("SettingsFromEnvironment", __base__=_FromEnvironment, **declared)
