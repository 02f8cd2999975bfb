"""No secret reaches what the system says: its JSON logs, its HTTP answers (bodies and headers),
its metrics, the audit log, or the output of operator commands that are not meant to show one.

In process: the API through TestClient, operator commands through click, the worker's tasks
run eagerly. test_secrets_in_running_system.py does the same against real processes.
Secrets searched for: every signing secret, API key, source token, the tenant's stitch key
and SKELDIR_SECRET_KEY, raw, hex and base64 (signed_deliveries.leak_forms).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from celery import current_app
from click.testing import CliRunner
from prometheus_client import generate_latest
from signed_deliveries import (
    PROVIDERS,
    SECRETS,
    leaked,
    local_paypal_provider,
    needles,
    sale,
    secret_key_bytes,
    signed,
    unprocessable,
)

from skeldir.adapters.cli import main
from skeldir.adapters.tasks import runtime as worker_runtime
from skeldir.adapters.tasks.celery_app import create_celery
from skeldir.adapters.tasks.scheduling import RECOMPUTE_TASK, REFRESH_TASK
from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.base.observability.logging import configure_logging
from skeldir.domains.providers import registry

ROTATED_SECRET = "shpss_leakcheck_output_rotated_9d0e"


def said_by_the_system(record: logging.LogRecord) -> bool:
    """False for the test client's own request lines (its URLs carry source tokens)."""
    return not (record.name == "httpx" and "http://testserver/" in record.getMessage())


@pytest.fixture
def json_log(monkeypatch) -> Iterator[io.StringIO]:
    """Every log line of the system as production writes it (skeldir.base.observability.logging)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        configure_logging("DEBUG", component="test")
    for handler in root.handlers:
        handler.addFilter(said_by_the_system)
    root.handlers[:] = [*saved_handlers, *root.handlers]
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


class Operator:
    """`skeldir ...` as an operator runs it, against the session's database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = {"SKELDIR_OWNER_DATABASE_URL": settings.owner_database_url,
                    "SKELDIR_DATABASE_URL": settings.database_url,
                    "SKELDIR_WORKER_DATABASE_URL": settings.worker_database_url,
                    "SKELDIR_SECRET_KEY": settings.secret_key, "SKELDIR_BROKER_URL": "memory://",
                    "SKELDIR_PUBLIC_URL": "http://test"}

    def __call__(self, *args: str) -> str:
        result = CliRunner().invoke(main, ["--data-dir", str(self.settings.data_dir), *args],
                                    env=self.env)
        assert result.exit_code == 0, result.output
        return result.output


def run_worker_chain(settings: Settings, tenant_id: str) -> None:
    """The worker's recompute and refresh for the tenant, run eagerly through Celery (signals,
    metrics and log lines included) with the worker's own runtime."""
    app = create_celery(replace(settings, broker_url="memory://"))
    app.loader.import_default_modules()
    previous = current_app._get_current_object()
    app.set_current()
    try:
        for task in (RECOMPUTE_TASK, REFRESH_TASK):
            result = app.tasks[task].apply(args=[tenant_id])
            assert result.successful(), result.traceback
    finally:
        previous.set_current()
        runtime = worker_runtime._runtime
        if runtime is not None:
            runtime.run(runtime.pool.close())
            runtime.loop.close()
            worker_runtime._runtime = None


def test_no_secret_reaches_logs_answers_metrics_or_the_audit_log(
        database: Settings, client, json_log, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setitem(registry.PROVIDERS, "paypal", local_paypal_provider())
    skeldir = Operator(database)
    said: dict[str, str | bytes] = {}  # everything searched, by where it came from

    # Keys and source URLs are printed once, by design: those outputs are the only exception.
    tenant = json.loads(skeldir("tenant", "create", "leak check", "--json"))
    tenant_id = tenant["tenant_id"]
    urls = {provider: json.loads(skeldir("source", "add", "--tenant", tenant_id, "--provider",
                                         provider, "--secret", SECRETS[provider], "--json"))["url"]
            for provider in PROVIDERS}
    shopify_source = next(source["source_id"] for source in json.loads(skeldir(
        "source", "list", "--tenant", tenant_id, "--json"))["items"]
        if source["provider"] == "shopify")
    said["source rotate"] = skeldir("source", "rotate", "--tenant", tenant_id, "--source",
                                    shopify_source, "--secret", ROTATED_SECRET)
    said["source list"] = skeldir("source", "list", "--tenant", tenant_id)
    said["source list --json"] = skeldir("source", "list", "--tenant", tenant_id, "--json")

    responses = []

    def send(method: str, path: str, **kwargs):
        response = client.request(method, path, **kwargs)
        responses.append(response)
        return response

    for number, provider in enumerate(PROVIDERS, start=960001):
        path = urlsplit(urls[provider]).path
        body, headers = signed(provider, sale(provider, number))
        assert send("POST", path, content=body, headers=headers).json()["status"] == "accepted"
        assert send("POST", path, content=body, headers=headers).json()["status"] == "duplicate"
        body, headers = signed(provider, unprocessable(provider))
        assert send("POST", path, content=body, headers=headers).json()["status"] == (
            "dead_lettered")
        body, headers = signed(provider, sale(provider, number), secret=b"not-the-secret")
        assert send("POST", path, content=body, headers=headers).status_code == 401
    body, headers = signed("shopify", sale("shopify", 960100))
    keyed = {**headers, "x-skeldir-tenant-key": tenant["webhook_key"]}
    assert send("POST", "/api/webhooks/shopify", content=body, headers=keyed).status_code == 200
    assert send("POST", "/api/webhooks/shopify", content=body,
                headers={**keyed, "content-type": "text/plain"}).status_code == 415

    admin = {"Authorization": f"Bearer {tenant['api_key']}"}
    created = client.post("/api/keys", json={"scope": "read", "label": "analyst"}, headers=admin)
    assert created.status_code == 201
    read_key = created.json()["api_key"]
    said["key creation headers"] = json.dumps(sorted(created.headers.items()))
    reader = {"Authorization": f"Bearer {read_key}"}
    for method, path, kwargs, status in [
        ("GET", "/api/keys", {"headers": admin}, 200),
        ("GET", "/api/events", {"headers": reader}, 200),
        ("GET", "/api/dead-events", {"headers": reader}, 200),
        ("GET", "/api/status", {"headers": reader}, 200),
        ("GET", "/api/keys", {}, 401),
        ("GET", "/api/keys", {"headers": {"Authorization": f"Bearer {read_key}x"}}, 401),
        ("GET", "/api/keys", {"headers": reader}, 403),
        ("GET", "/api/events", {"headers": {"Authorization": f"Bearer {tenant['collect_key']}"}},
         403),
        ("POST", "/api/keys", {"headers": admin, "json": {"scope": "root"}}, 400),
        ("GET", "/api/reports/daily-revenue?from=never", {"headers": reader}, 422),
        ("GET", "/api/no-such-route", {"headers": reader}, 404),
    ]:
        assert send(method, path, **kwargs).status_code == status, (method, path)
    said["key list"] = skeldir("key", "list", "--tenant", tenant_id)
    said["key list --json"] = skeldir("key", "list", "--tenant", tenant_id, "--json")

    run_worker_chain(database, tenant_id)
    said["api /metrics"] = send("GET", "/metrics").text
    said["process metrics"] = generate_latest()
    with owner_connection(database) as conn:
        said["audit_log"] = "\n".join(row[0] for row in conn.execute(
            "SELECT to_jsonb(a)::text FROM audit_log a WHERE tenant_id = %s", (tenant_id,)))
        stitch = conn.execute("SELECT stitch_key_ciphertext FROM tenants WHERE tenant_id = %s",
                              (tenant_id,)).fetchone()[0]
    for index, response in enumerate(responses):
        said[f"response {index} {response.request.method} {response.request.url.path[:30]}"] = (
            json.dumps(sorted(response.headers.items())).encode() + b"\n" + response.content)
    said["json log"] = json_log.getvalue()
    said["log records"] = "\n".join(
        json.dumps(record.__dict__, default=str) + (record.exc_text or "")
        for record in caplog.records if said_by_the_system(record))

    found = needles({
        **{f"{provider} secret": secret for provider, secret in SECRETS.items()},
        "rotated secret": ROTATED_SECRET,
        "standard key": secret_key_bytes("standard"),
        **{f"{provider} source token": urlsplit(url).path.rsplit("/", 1)[-1]
           for provider, url in urls.items()},
        "admin key": tenant["api_key"], "webhook key": tenant["webhook_key"],
        "collect key": tenant["collect_key"], "read key": read_key,
        "stitch key": secret_box(database).decrypt(bytes(stitch),
                                                   context=uuid.UUID(tenant_id).bytes),
        "SKELDIR_SECRET_KEY": database.secret_key,
        "secret key bytes": base64.b64decode(database.secret_key),
    })
    assert {where: leaked(text, found) for where, text in said.items()
            if leaked(text, found)} == {}
    # The search covered the flows: they were logged, audited and counted.
    log_text = said["json log"]
    for line in ("event_ingested", "event_duplicate", "event_dead_lettered", "task_succeeded",
                 RECOMPUTE_TASK, REFRESH_TASK):
        assert line in log_text, line
    assert said["audit_log"].count(tenant_id) >= 8
    assert b'outcome="unauthorized"' in said["process metrics"]
