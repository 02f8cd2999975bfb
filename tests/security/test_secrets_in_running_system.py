"""A real system (`skeldir up`: API, worker with beat, embedded PostgreSQL and Redis) keeps
every secret out of its log file, its HTTP answers, the metrics of API and worker and the audit
log, through signed, refused and dead-lettered webhooks, API key creation, refused requests and
the worker's recompute; and `skeldir doctor` passes every check against it.

PayPal is left out: its signatures are checked against a certificate on PayPal's own hosts,
which a local test cannot sign for (test_secrets_in_output.py covers it in process).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from e2e.e2e_system import RunningSystem, start_system
from signed_deliveries import (
    SECRETS,
    leaked,
    needles,
    sale,
    secret_key_bytes,
    signed,
    unprocessable,
)

from skeldir.base.crypto import KEY_FILE

pytestmark = pytest.mark.e2e

PROVIDERS = ("shopify", "stripe", "woocommerce", "standard")


@pytest.fixture(scope="module")
def system() -> Iterator[RunningSystem]:
    yield from start_system()


def secret_key_of(system: RunningSystem) -> str:
    given = system.env.get("SKELDIR_SECRET_KEY")
    return given or (Path(system.data_dir) / KEY_FILE).read_text().strip()


def poll(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


def test_no_secret_reaches_the_logs_answers_metrics_or_audit_log(system: RunningSystem) -> None:
    tenant = system.cli("tenant", "create", "leak check", "--json")
    urls = {provider: system.cli("source", "add", "--tenant", tenant["tenant_id"], "--provider",
                                 provider, "--secret", SECRETS[provider], "--json")["url"]
            for provider in PROVIDERS}
    api = system.api_url
    said: dict[str, str | bytes] = {}
    responses: list[httpx.Response] = []
    with httpx.Client(base_url=api, timeout=10) as http:
        def send(method: str, path: str, **kwargs) -> httpx.Response:
            response = http.request(method, path, **kwargs)
            responses.append(response)
            return response

        for number, provider in enumerate(PROVIDERS, start=970001):
            path = urlsplit(urls[provider]).path
            body, headers = signed(provider, sale(provider, number))
            assert send("POST", path, content=body, headers=headers).json()["status"] == "accepted"
            assert send("POST", path, content=body, headers=headers).json()["status"] == (
                "duplicate")
            body, headers = signed(provider, unprocessable(provider))
            assert send("POST", path, content=body, headers=headers).json()["status"] == (
                "dead_lettered")
            body, headers = signed(provider, sale(provider, number), secret=b"not-the-secret")
            assert send("POST", path, content=body, headers=headers).status_code == 401
            assert send("POST", f"/hooks/src_{uuid.uuid4().hex}_x", content=body,
                        headers=headers).status_code == 401

        admin = {"Authorization": f"Bearer {tenant['api_key']}"}
        created = http.post("/api/keys", json={"scope": "read"}, headers=admin)
        assert created.status_code == 201
        read_key = created.json()["api_key"]
        said["key creation headers"] = json.dumps(sorted(created.headers.items()))
        reader = {"Authorization": f"Bearer {read_key}"}
        for method, path, kwargs, status in [
            ("GET", "/api/keys", {"headers": admin}, 200),
            ("GET", "/api/dead-events", {"headers": reader}, 200),
            ("GET", "/api/keys", {}, 401),
            ("GET", "/api/keys", {"headers": reader}, 403),
            ("GET", "/api/reports/daily-revenue?from=never", {"headers": reader}, 422),
        ]:
            assert send(method, path, **kwargs).status_code == status, (method, path)

        def attributed():
            status = send("GET", "/api/status", headers=reader).json()["freshness"]
            return status["reports_fresh"] and status["last_attributed_at"]

        poll("the worker's recompute", attributed)
        said["api /metrics"] = send("GET", "/metrics").text
    said["worker /metrics"] = httpx.get(system.worker_metrics_url, timeout=10).text
    for index, response in enumerate(responses):
        said[f"response {index} {response.request.method} {response.request.url.path[:30]}"] = (
            json.dumps(sorted(response.headers.items())).encode() + b"\n" + response.content)
    with psycopg.connect(system.ready["owner_database_url"]) as conn:
        said["audit_log"] = "\n".join(row[0] for row in conn.execute(
            "SELECT to_jsonb(a)::text FROM audit_log a WHERE tenant_id = %s",
            (tenant["tenant_id"],)))
    said["doctor"] = json.dumps(system.cli("doctor", "--json"))
    said["log file"] = system.log_text()

    secret_key = secret_key_of(system)
    found = needles({
        **{f"{provider} secret": SECRETS[provider] for provider in PROVIDERS},
        "standard key": secret_key_bytes("standard"),
        **{f"{provider} source token": urlsplit(url).path.rsplit("/", 1)[-1]
           for provider, url in urls.items()},
        "admin key": tenant["api_key"], "webhook key": tenant["webhook_key"],
        "collect key": tenant["collect_key"], "read key": read_key,
        "secret key": secret_key, "secret key bytes": base64.b64decode(secret_key),
    })
    assert {where: leaked(text, found) for where, text in said.items()
            if leaked(text, found)} == {}
    # The search covered the flows: the log holds the API's and the worker's lines.
    for line in ("event_ingested", "event_dead_lettered", "task_succeeded"):
        assert line in said["log file"], line
    entries = [json.loads(line) for line in said["log file"].splitlines() if line.startswith("{")]
    assert {"api", "worker"} <= {entry.get("component") for entry in entries}
    assert 'outcome="unauthorized"' in said["api /metrics"]
    assert "celery_task_success_total" in said["worker /metrics"]


def test_doctor_passes_every_check_against_the_running_system(system: RunningSystem) -> None:
    report = system.cli("doctor", "--json")
    assert report["ok"], report
    assert {check["name"]: check["status"] for check in report["checks"]} == {
        check["name"]: "ok" for check in report["checks"]}
