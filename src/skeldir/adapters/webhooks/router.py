"""The HTTP edge for webhooks: resolve the source, verify raw bytes, parse, ingest, schedule.

Unknown tenants, unknown sources and bad signatures take the same path (an HMAC is always
computed) and get the same 401, so neither the answer nor its timing tells them apart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from skeldir.adapters.tasks.privacy import schedule_request
from skeldir.adapters.webhooks.sources import ResolvedSource, SourceResolver
from skeldir.base.crypto import SecretBox
from skeldir.base.db import DATABASE_UNAVAILABLE_ERRORS
from skeldir.base.http import rate_limits
from skeldir.base.http.bodies import read_capped
from skeldir.base.http.problems import problem
from skeldir.base.http.responses import OrjsonResponse
from skeldir.base.http.unavailable import database_unavailable
from skeldir.base.observability import metrics
from skeldir.domains.ingestion.batching import IngestBatcher
from skeldir.domains.ingestion.inbox import IngestResult, ingest_arguments, record_dead_event
from skeldir.domains.ingestion.privacy import storable_text
from skeldir.domains.ingestion.provider import (
    Delivery,
    Provider,
    SignatureError,
    UnprocessableEvent,
    VerificationContext,
)
from skeldir.domains.privacy import shopify_compliance
from skeldir.domains.privacy.subjects import SubjectError
from skeldir.domains.providers.registry import (
    LEGACY_TOPICS,
    PINGS,
    PROVIDERS,
    SIGNATURE_HEADERS,
    TOPIC_HEADERS,
)
from skeldir.domains.providers.signing import StaleTimestamp
from skeldir.operations import privacy_requests

log = logging.getLogger(__name__)

TENANT_KEY_HEADER = "x-skeldir-tenant-key"
# Verifying against a throwaway secret costs what a real check costs.
_DECOY_SECRETS = (b"decoy-secret-that-matches-nothing",)


@dataclass
class WebhookEdge:
    pool: asyncpg.Pool
    box: SecretBox
    sources: SourceResolver
    schedule_chain: Callable[[uuid.UUID, dict[str, str]], Awaitable[None]]
    max_body_bytes: int
    chain_stale: timedelta
    batcher: IngestBatcher


# Declared for the OpenAPI document (and the methods they refuse); a POST to one of these paths
# is answered by `serve_directly` before FastAPI's routing (see SkeldirApp).
router = APIRouter()


def _edge(request: Request) -> WebhookEdge:
    return request.app.state.webhook_edge


# With a trailing slash (a URL pasted into a provider's form) it is the same URL, never a redirect.
@router.post("/hooks/{source_token}/", include_in_schema=False)
@router.post("/hooks/{source_token}", include_in_schema=True, summary="Webhook URL of one source")
async def receive_by_source_token(source_token: str, request: Request) -> Response:
    edge = _edge(request)
    try:
        source = await edge.sources.by_token(source_token)
    except DATABASE_UNAVAILABLE_ERRORS:
        return _unavailable("unknown")
    return await _receive(edge, request, source, source.provider if source else None, {})


@router.post("/api/webhooks/{provider}", summary="Webhook for a provider, tenant given by key")
async def receive_by_tenant_key(provider: str, request: Request) -> Response:
    return await _receive_with_key(request, provider, None)


@router.post("/api/webhooks/{provider}/{legacy_route}", summary="Routes of the replaced system")
async def receive_legacy(provider: str, legacy_route: str, request: Request) -> Response:
    topic = LEGACY_TOPICS.get((provider, legacy_route))
    if topic is None:
        return problem(404, "Not found", "no such webhook route")
    return await _receive_with_key(request, provider, topic)


Endpoint = Callable[..., Awaitable[Response]]


def direct_endpoint(path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """The webhook endpoint a POST to `path` reaches, with its path parameters (as the routes
    above declare them), or None for any other path."""
    parts = path.split("/")
    if parts[1:2] == ["hooks"] and len(parts) in (3, 4) and parts[2] and parts[3:] in ([], [""]):
        return receive_by_source_token, {"source_token": parts[2]}
    if parts[1:3] == ["api", "webhooks"] and len(parts) in (4, 5) and all(parts[3:]):
        if len(parts) == 4:
            return receive_by_tenant_key, {"provider": parts[3]}
        return receive_legacy, {"provider": parts[3], "legacy_route": parts[4]}
    return None


async def serve_directly(
    endpoint: Endpoint, path_params: dict[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer a webhook POST without the read API's middleware and routing (audit log, body
    limit, telemetry and exception layers): the endpoint reads its own capped body, answers
    every error it expects, and is logged and answered 500 for any other."""
    try:
        response = await endpoint(request=Request(scope, receive), **path_params)
    except Exception:
        log.exception("webhook_failed", extra={"endpoint": endpoint.__name__})
        response = problem(500, "Internal server error", "the webhook could not be processed")
    await response(scope, receive, send)


async def _receive_with_key(request: Request, provider: str, default_topic: str | None) -> Response:
    if provider not in PROVIDERS:
        return problem(404, "Not found", f"unknown provider; known: {', '.join(PROVIDERS)}")
    edge = _edge(request)
    tenant_key = request.headers.get(TENANT_KEY_HEADER, "")
    try:
        source = await edge.sources.by_tenant_key(tenant_key, provider) if tenant_key else None
    except DATABASE_UNAVAILABLE_ERRORS:
        return _unavailable(provider)
    return await _receive(edge, request, source, provider, {"default_topic": default_topic})


async def _receive(
    edge: WebhookEdge,
    request: Request,
    source: ResolvedSource | None,
    provider_name: str | None,
    options: dict,
) -> Response:
    started = time.perf_counter()
    label = provider_name or "unknown"
    try:
        body = await _capped_body(request, edge.max_body_bytes)
        headers = {name.lower(): value for name, value in request.headers.items()}
        if _is_ping(label, body, headers):
            # Answered alike for known and unknown sources; nothing is stored.
            return _outcome(label, "ping", OrjsonResponse({"status": "ping"}))
        _require_json(headers)
        if options.get("default_topic") and label in TOPIC_HEADERS:
            headers.setdefault(TOPIC_HEADERS[label], options["default_topic"])
        source, provider = await _verified(source, label, body, headers)
        # Refused before anything is stored: the provider retries later.
        await _admit(request, source)
    except _Refusal as refusal:
        return _outcome(label, refusal.outcome, refusal.response)

    compliance = shopify_compliance.compliance_topic(headers) if label == "shopify" else None
    if compliance is not None:
        return await _privacy_request(edge, request, source, compliance, body, headers)

    try:
        delivery = provider.parse(body, headers)
        result = await edge.batcher.ingest(
            ingest_arguments(
                tenant_id=source.tenant_id,
                source_id=source.source_id,
                provider=source.provider,
                delivery=delivery,
                stitch_key=source.stitch_key,
            )
        )
    except UnprocessableEvent as exc:  # unreadable, or refused by the ledger (no conversion)
        return await _dead_letter(edge, source, label, body, headers, str(exc))
    except DATABASE_UNAVAILABLE_ERRORS:
        return _unavailable(label)
    metrics.INGESTION_DURATION.observe(time.perf_counter() - started)
    await _report_ingested(edge, source, delivery, result)
    return _outcome(
        label,
        result.status,
        OrjsonResponse({"status": result.status, "event_id": str(result.event_id)}),
    )


async def _privacy_request(
    edge: WebhookEdge,
    request: Request,
    source: ResolvedSource,
    topic: str,
    body: bytes,
    headers: dict[str, str],
) -> Response:
    """A verified Shopify compliance webhook: stored as a privacy request (200 once stored, the
    same answer for a redelivery), carried out by the worker."""
    try:
        asked = shopify_compliance.read(topic, body, headers)
        request_id, new = await privacy_requests.submit(
            edge.pool,
            edge.box,
            source.tenant_id,
            kind=asked.kind,
            origin="shopify",
            customer_refs=asked.customer_refs,
            orders=asked.orders,
            source_id=source.source_id,
            dedupe_key=asked.dedupe_key,
        )
    except (shopify_compliance.ComplianceError, SubjectError) as exc:
        return await _dead_letter(edge, source, "shopify", body, headers, str(exc))
    except DATABASE_UNAVAILABLE_ERRORS:
        return _unavailable("shopify")
    if new:
        await schedule_request(request.app.state.celery, source.tenant_id, request_id)
    status = "accepted" if new else "duplicate"
    return _outcome(
        "shopify", status, OrjsonResponse({"status": status, "privacy_request_id": str(request_id)})
    )


class _Refusal(Exception):
    """A step's answer that ends the request before anything is stored."""

    def __init__(self, outcome: str, response: Response) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.response = response


async def _capped_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) when its declared or its actual length is over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _too_large(limit)
    body = await read_capped(request, limit)
    if body is None:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> _Refusal:
    return _Refusal(
        "too_large", problem(413, "Payload too large", f"the body limit is {limit} bytes")
    )


def _is_ping(label: str, body: bytes, headers: dict[str, str]) -> bool:
    is_ping = PINGS.get(label)
    return is_ping is not None and is_ping(body, headers)


def _require_json(headers: dict[str, str]) -> None:
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise _Refusal(
            "unsupported_media_type",
            problem(415, "Unsupported media type", "webhooks are application/json"),
        )


async def _verified(
    source: ResolvedSource | None, label: str, body: bytes, headers: dict[str, str]
) -> tuple[ResolvedSource, Provider]:
    """The source and its provider once the body's signature matches one of its secrets.

    An unknown source is checked against a decoy secret, so it is refused (401) after the
    same work as a bad signature."""
    provider = PROVIDERS.get(label) or _claimed_provider(headers)
    verification = VerificationContext(source_settings=source.settings if source else {})
    secrets = source.secrets if source else _DECOY_SECRETS
    try:
        if not provider.verify_may_block:
            provider.verify(body, headers, secrets, verification)
        elif source is not None:
            # Only for a known source: an unknown one must never make us fetch a certificate.
            await asyncio.to_thread(provider.verify, body, headers, secrets, verification)
        verified = source is not None
    except StaleTimestamp as exc:
        # Raised only after a signature matched one of the source's secrets (decoys never
        # match), so this answer tells the sender nothing it could not sign itself.
        raise _Refusal("unauthorized", _stale_timestamp(exc)) from None
    except SignatureError:
        verified = False
    if source is None or not verified:
        raise _Refusal(
            "unauthorized",
            problem(401, "Unauthorized", "unknown source or signature does not match"),
        )
    return source, provider


async def _admit(request: Request, source: ResolvedSource) -> None:
    refused = await rate_limits.refusal(request, rate_limits.WEBHOOKS, source.tenant_id)
    if refused is not None:
        raise _Refusal("rate_limited", refused)


async def _report_ingested(
    edge: WebhookEdge, source: ResolvedSource, delivery: Delivery, result: IngestResult
) -> None:
    """Count and log the ingest, and queue the tenant's chain when the event changed an order."""
    context = {
        "tenant_id": str(source.tenant_id),
        "provider": source.provider,
        "event_id": str(result.event_id),
    }
    if result.status == "duplicate":
        metrics.EVENTS_DUPLICATE.inc()
        log.info("event_duplicate", extra=context)
    else:
        metrics.EVENTS_INGESTED.inc()
        log.info("event_ingested", extra={**context, "topic": delivery.topic})
    if result.needs_chain:
        await edge.schedule_chain(source.tenant_id, context)


async def _dead_letter(
    edge: WebhookEdge,
    source: ResolvedSource,
    label: str,
    body: bytes,
    headers: dict[str, str],
    reason: str,
) -> Response:
    try:
        dead_event_id = await record_dead_event(
            edge.pool,
            edge.box,
            tenant_id=source.tenant_id,
            source_id=source.source_id,
            provider=source.provider,
            topic=headers.get(TOPIC_HEADERS.get(label, "")) or delivery_topic(body),
            reason=reason,
            body=body,
            headers=_kept_headers(headers),
        )
    except DATABASE_UNAVAILABLE_ERRORS:
        return _unavailable(label)
    metrics.EVENTS_DEAD_LETTERED.inc()
    log.warning(
        "event_dead_lettered",
        extra={
            "tenant_id": str(source.tenant_id),
            "provider": source.provider,
            "dead_event_id": str(dead_event_id),
            "reason": reason,
        },
    )
    return _outcome(
        label,
        "dead_lettered",
        OrjsonResponse(
            {"status": "dead_lettered", "dead_event_id": str(dead_event_id), "reason": reason}
        ),
    )


def _claimed_provider(headers: dict[str, str]) -> Provider:
    """For a source URL that names no source: the provider whose signature the request carries
    (Shopify's when none), so that refusing it does the work refusing a bad signature does."""
    for name, signature_headers in SIGNATURE_HEADERS.items():
        if any(header in headers for header in signature_headers):
            return PROVIDERS[name]
    return PROVIDERS["shopify"]


def delivery_topic(body: bytes) -> str | None:
    """The topic a dead-lettered body names (`type` or `event_type`), for listing, if any."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    topic = document.get("type") or document.get("event_type")
    return storable_text(topic[:100]) if isinstance(topic, str) else None


_KEPT_HEADER_PREFIXES = (
    "x-shopify-",
    "shopify-",
    "stripe-",
    "x-wc-webhook-",
    "paypal-",
    "webhook-",
    "content-type",
)


def _kept_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers a replay needs (signature material included); never cookies or client addresses."""
    return {k: v[:1000] for k, v in headers.items() if k.startswith(_KEPT_HEADER_PREFIXES)}


def _stale_timestamp(exc: StaleTimestamp) -> Response:
    direction = "behind" if exc.skew_seconds > 0 else "ahead of"
    return problem(
        401,
        "Unauthorized",
        f"the signature matches, but its signed timestamp is {abs(exc.skew_seconds):.0f} s"
        f" {direction} this server's clock, beyond the source's tolerance of"
        f" {exc.tolerance:g} s: check the clocks of the sender and of this server (NTP), or"
        " connect the source with a larger --tolerance-seconds",
    )


def _unavailable(provider: str) -> Response:
    return _outcome(provider, "unavailable", database_unavailable())


def _outcome(provider: str, outcome: str, response: Response) -> Response:
    _requests_counter(
        provider if provider in PROVIDERS else "unknown",
        outcome if outcome in metrics.WEBHOOK_OUTCOMES else "error",
    ).inc()
    return response


# Keyed by the labels as counted (known providers and outcomes only), so a few dozen entries:
# the labelled child is looked up once, not on every request (labels() costs ~5 us).
@functools.cache
def _requests_counter(provider: str, outcome: str):
    return metrics.WEBHOOK_REQUESTS.labels(provider=provider, outcome=outcome)
