"""create_app(): the API process — routers, error shapes, and the resources it holds."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from skeldir import __version__
from skeldir.adapters.api import (
    api_keys,
    attribution,
    connectors,
    dashboard,
    docs_page,
    exports,
    operations,
    privacy,
    reports,
    spend,
    touchpoints,
    weights,
)
from skeldir.adapters.api.audit import AuditLog
from skeldir.adapters.api.long_operations import TenantOperationSlots
from skeldir.adapters.tasks.celery_app import create_celery
from skeldir.adapters.tasks.scheduling import ChainScheduler
from skeldir.adapters.webhooks import router as webhooks
from skeldir.adapters.webhooks.sources import SourceResolver
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import DATABASE_UNAVAILABLE_ERRORS, create_pool, session_limits
from skeldir.base.http.problems import http_exception_handler, validation_exception_handler
from skeldir.base.http.rate_limits import TenantRateLimits
from skeldir.base.http.unavailable import database_unavailable_handler
from skeldir.base.read_replica import ReadPools
from skeldir.domains.ingestion.batching import IngestBatcher


class SkeldirApp(FastAPI):
    """The API: a POST to a webhook URL goes straight to its endpoint (`serve_directly`), every
    other request through FastAPI's middleware and routing. The webhook routes stay declared on
    the router for the OpenAPI document. The read API's layers cost a webhook about as much as
    verifying its signature, and do nothing for it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = webhooks.direct_endpoint(scope["path"])
            if found is not None:
                scope["app"] = self
                await webhooks.serve_directly(*found, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        limits = session_limits(settings)
        pool = await create_pool(settings, server_settings=limits)
        # Webhooks have their own connections: reads, exports and operations cannot take them.
        ingest_pool = await create_pool(
            settings, max_size=settings.db_ingest_pool_size, server_settings=limits
        )
        reads = ReadPools(
            pool,
            # No connection at start: a replica that is down must not stop the API.
            await create_pool(
                settings, url=settings.read_database_url, min_size=0, server_settings=limits
            )
            if settings.read_database_url
            else None,
            max_lag_seconds=settings.read_replica_max_lag_seconds,
            check_seconds=settings.read_replica_check_seconds,
        )
        await reads.start()
        box = secret_box(settings)
        sources = SourceResolver(
            ingest_pool, box, settings.source_cache_seconds, settings.database_url
        )
        await sources.start()
        chain_stale = timedelta(seconds=settings.chain_stale_seconds)
        celery_app = create_celery(settings)
        scheduler = ChainScheduler(ingest_pool, celery_app, chain_stale)
        batcher = IngestBatcher(
            ingest_pool,
            chain_stale,
            max_batch=settings.ingest_batch_max,
            max_wait=settings.ingest_batch_wait_ms / 1000,
            max_in_flight=settings.ingest_batches_in_flight,
        )
        app.state.settings = settings
        app.state.pool = pool
        app.state.reads = reads
        app.state.ingest_pool = ingest_pool
        app.state.long_operations = TenantOperationSlots(settings.long_operations_per_tenant)
        app.state.box = box
        app.state.schedule_chain = scheduler.request
        app.state.celery = celery_app
        rate_limits = TenantRateLimits.from_settings(settings)
        app.state.rate_limits = rate_limits
        app.state.webhook_edge = webhooks.WebhookEdge(
            pool=ingest_pool,
            box=box,
            sources=sources,
            schedule_chain=scheduler.request,
            max_body_bytes=settings.max_body_bytes,
            chain_stale=chain_stale,
            batcher=batcher,
        )
        metrics_listener = (
            start_http_server(settings.api_metrics_port, addr=settings.api_metrics_host)[0]
            if settings.api_metrics_port
            else None
        )
        # What startup built lives as long as the process: frozen, it is left out of full
        # collections, which otherwise walked it about once a second under load (~90 ms each).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if metrics_listener is not None:
                metrics_listener.shutdown()
                metrics_listener.server_close()
            await batcher.close()
            await rate_limits.close()
            await scheduler.drain()
            await sources.close()
            await ingest_pool.close()
            await reads.close()
            await pool.close()

    # Docs served by docs_page: FastAPI's own load their assets from a CDN.
    app = SkeldirApp(
        title="Skeldir", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    # A redirect to the path with or without a slash would echo the path, a webhook's source
    # token included, in Location, and clients re-send a POST's body to wherever it points.
    app.router.redirect_slashes = False
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    for error in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, database_unavailable_handler)
    app.include_router(webhooks.router)
    app.include_router(attribution.router)
    app.include_router(weights.router)
    app.include_router(reports.router)
    app.include_router(exports.router)
    app.include_router(spend.router)
    app.include_router(connectors.router)
    app.include_router(privacy.router)
    app.include_router(docs_page.router)
    app.include_router(touchpoints.router)
    app.include_router(api_keys.router)
    app.include_router(operations.router)
    app.include_router(dashboard.router)
    app.add_middleware(AuditLog)

    # Health is the ingest path's: the pool webhooks use answers, whatever readers do.
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        await app.state.ingest_pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    if not settings.api_metrics_port:

        @app.get("/metrics", include_in_schema=False)
        async def metrics_endpoint() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
