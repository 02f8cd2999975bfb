"""The canonical path, end to end with real processes: a signed Shopify order becomes a
balanced, tenant-safe report row, with metric deltas and log markers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time

import asyncpg
import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from personal_data import personal_values
from provider_fixtures import SHARED_PROVIDER_FIXTURES

pytestmark = pytest.mark.e2e

SECRET = "shpss_e2e_secret"
CANONICAL_ORDER = {"id": 424242, "total_price": "10.50", "currency": "USD",
                   "created_at": "2026-01-25T12:34:56Z"}
MODELS = {"first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based"}
ALLOWED_LABELS = {"provider", "outcome", "task_name", "report", "trigger", "kind", "export", "format",
                  "le", "quantile",
                  # prometheus_client's own process and runtime collectors
                  "implementation", "major", "minor", "patchlevel", "version", "generation"}
ID_LIKE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-|^\d{4,}$|^skd_|^src_")


def signed_headers(body: bytes, topic: str = "orders/create", **extra: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(), **extra}


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    samples = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def poll(what: str, check, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not true after {timeout:.0f}s; last observation: {last!r}")


@pytest.fixture(scope="module")
def tenants(system):
    created = {}
    for name in ("A", "B"):
        tenant = system.cli("tenant", "create", f"shop {name}", "--json")
        source = system.cli("source", "add", "--tenant", tenant["tenant_id"], "--provider", "shopify",
                            "--secret", SECRET, "--json")
        created[name] = {**tenant, **source}
    return created


def order_view(system, api_key: str | None, order_id: str = "424242") -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.get(f"{system.api_url}/api/attribution/orders/shopify/{order_id}", headers=headers, timeout=5)


def balanced(system, api_key: str, order_id: str, revenue: int):
    response = order_view(system, api_key, order_id)
    if response.status_code != 200:
        return False
    body = response.json()
    models = body["models"]
    done = (set(models) == MODELS and body["revenue_cents"] == revenue
            and all(m["report_refreshed"] and m["is_balanced"] and m["allocated_cents"] == revenue
                    for m in models.values()))
    return body if done else False


async def runtime_rows(database_url: str, tenant_id: str | None) -> list:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            if tenant_id:
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)
            return await conn.fetch(
                "SELECT s.model, s.revenue_cents, s.allocated_cents, s.is_balanced, s.drift_cents"
                " FROM allocation_summary s JOIN orders o USING (tenant_id, order_id)"
                " WHERE o.external_order_id = '424242'")
    finally:
        await conn.close()


def test_signed_order_becomes_a_balanced_tenant_safe_report_row(system, tenants):
    a, b = tenants["A"], tenants["B"]
    api_before = scrape(f"{system.api_url}/metrics")
    worker_before = scrape(system.worker_metrics_url)

    body = json.dumps(CANONICAL_ORDER).encode()
    response = httpx.post(f"{system.api_url}/api/webhooks/shopify/order_create", content=body,
                          headers={**signed_headers(body, **{"X-Shopify-Event-Id": "e2e-424242"}),
                                   "X-Skeldir-Tenant-Key": a["webhook_key"]}, timeout=10)
    assert response.status_code == 200, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted"

    view = poll("order 424242 balanced in every model", lambda: balanced(system, a["api_key"], "424242", 1050))
    assert view["currency"] == "USD"
    for model in view["models"].values():
        assert model["allocations"] == [
            {"channel": "unknown", "cents": 1050, "gross_cents": 1050, "refunded_cents": 0}]

    rows = asyncio.run(runtime_rows(system.ready["database_url"], a["tenant_id"]))
    assert {r["model"] for r in rows} == MODELS
    assert all((r["revenue_cents"], r["allocated_cents"], r["is_balanced"], r["drift_cents"])
               == (1050, 1050, True, 0) for r in rows)
    assert asyncio.run(runtime_rows(system.ready["database_url"], b["tenant_id"])) == []
    assert asyncio.run(runtime_rows(system.ready["database_url"], None)) == []
    assert order_view(system, b["api_key"]).status_code == 404
    assert order_view(system, None).status_code == 401
    assert order_view(system, a["webhook_key"]).status_code == 403

    api_after = scrape(f"{system.api_url}/metrics")
    assert value(api_after, "events_ingested_total") - value(api_before, "events_ingested_total") == 1
    assert (value(api_after, "webhook_requests_total", provider="shopify", outcome="accepted")
            - value(api_before, "webhook_requests_total", provider="shopify", outcome="accepted")) == 1
    assert (value(api_after, "ingestion_duration_seconds_count")
            - value(api_before, "ingestion_duration_seconds_count")) == 1
    worker_after = poll("worker metrics count the chain", lambda: (
        lambda s: s if value(s, "report_refresh_total", report="daily_revenue", outcome="success")
        > value(worker_before, "report_refresh_total", report="daily_revenue", outcome="success")
        else None)(scrape(system.worker_metrics_url)))
    for task in ("attribution.recompute_window", "reporting.refresh_for_tenant"):
        assert (value(worker_after, "celery_task_success_total", task_name=task)
                > value(worker_before, "celery_task_success_total", task_name=task)), task
        assert value(worker_after, "celery_task_duration_seconds_count", task_name=task) >= 1

    logs = [json.loads(line) for line in system.log_text().splitlines() if line.startswith("{")]
    event_id = accepted["event_id"]
    marker = lambda name: [l for l in logs if l.get("message") == name]  # noqa: E731
    assert any(l["tenant_id"] == a["tenant_id"] and l["provider"] == "shopify" and l["event_id"] == event_id
               for l in marker("event_ingested"))
    assert any(l["tenant_id"] == a["tenant_id"] and l["event_id"] == event_id
               for l in marker("ingestion_followup_tasks_enqueued"))
    for name in ("task_started", "task_succeeded"):
        assert any(l["task_name"] == "attribution.recompute_window" and l["tenant_id"] == a["tenant_id"]
                   for l in marker(name)), name
    assert any("duration_ms" in l for l in marker("task_succeeded"))
    assert any(l["tenant_id"] == a["tenant_id"] and l["report"] == "daily_revenue"
               for l in marker("report_refreshed"))

    # A duplicate delivery answers with the original event and starts no recompute.
    recomputes = value(scrape(system.worker_metrics_url), "celery_task_success_total",
                       task_name="attribution.recompute_window")
    again = httpx.post(f"{system.api_url}/api/webhooks/shopify/order_create", content=body,
                       headers={**signed_headers(body, **{"X-Shopify-Event-Id": "e2e-424242"}),
                                "X-Skeldir-Tenant-Key": a["webhook_key"]}, timeout=10)
    assert again.json() == {"status": "duplicate", "event_id": event_id}
    time.sleep(3)  # three sweeper periods: long enough for any wrongly scheduled chain to run
    assert value(scrape(system.worker_metrics_url), "celery_task_success_total",
                 task_name="attribution.recompute_window") == recomputes
    with psycopg.connect(system.ready["owner_database_url"]) as conn:
        runs = conn.execute("SELECT count(*), max(status) FROM recompute_jobs WHERE tenant_id = %s",
                            (a["tenant_id"],)).fetchone()
    assert runs[0] >= 1 and runs[1] == "succeeded"


def test_every_real_shopify_fixture_is_accepted_and_nothing_personal_is_stored_or_logged(system, tenants):
    folder = SHARED_PROVIDER_FIXTURES / "shopify"
    if not folder.is_dir():
        pytest.skip(f"shared Shopify fixtures not found at {folder}")
    a = tenants["A"]
    assert a["url"].startswith(f"{system.api_url}/hooks/src_")
    personal: set[str] = set()
    for path in sorted(folder.glob("*.json")):
        body = path.read_bytes()
        topic = path.name.split("__")[0].replace("_", "/", 1)
        response = httpx.post(a["url"], content=body, headers=signed_headers(body, topic), timeout=10)
        assert response.status_code == 200, (path.name, response.text)
        assert response.json()["status"] == "accepted", (path.name, response.json())
        personal |= personal_values(json.loads(body))
    assert personal, "the fixtures have personal data to look for"

    view = poll("attributed fixture order balanced",
                lambda: balanced(system, a["api_key"], "450789469", 59894 - 20900))
    assert view["gross_cents"] == 59894 and view["refunded_cents"] == 20900
    assert view["models"]["last_touch"]["allocations"] == [
        {"channel": "referral", "cents": 38994, "gross_cents": 59894, "refunded_cents": 20900}]

    with psycopg.connect(system.ready["owner_database_url"]) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")]
        stored = "\n".join(
            str(row[0]) for table in tables for row in conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t"))
    logs = system.log_text()
    # Short all-digit values (a house number, a postcode) occur by chance inside the random
    # ids and timestamps of any table; matching them there proves nothing either way.
    for value_ in sorted(v for v in personal if not (v.isdigit() and len(v) < 6)):
        assert value_ not in stored, f"personal value stored: {value_!r}"
        assert value_ not in logs, f"personal value logged: {value_!r}"


def test_bad_requests_get_clear_errors_and_store_nothing(system, tenants):
    a = tenants["A"]
    body = json.dumps({**CANONICAL_ORDER, "id": 515151}).encode()
    url = f"{system.api_url}/api/webhooks/shopify/order_create"
    key = {"X-Skeldir-Tenant-Key": a["webhook_key"]}
    bad_signature = {**signed_headers(body), "X-Shopify-Hmac-Sha256": base64.b64encode(b"x" * 32).decode()}
    unknown_tenant = {"X-Skeldir-Tenant-Key": "skd_" + "0" * 32 + "_nope"}
    cases = [
        (signed_headers(body) | key | bad_signature, body, 401),
        (signed_headers(body) | unknown_tenant, body, 401),
        (signed_headers(body), body, 401),
        (signed_headers(body) | key | {"Content-Type": "text/plain"}, body, 415),
        (signed_headers(b"x" * 2_000_000) | key, b"x" * 2_000_000, 413),
    ]
    for headers, content, status in cases:
        response = httpx.post(url, content=content, headers=headers, timeout=10)
        assert response.status_code == status, (status, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    unknown_source = httpx.post(f"{system.api_url}/hooks/src_{'1' * 32}_nothing", content=body,
                                headers=signed_headers(body), timeout=10)
    assert unknown_source.status_code == 401
    assert unknown_source.json() == httpx.post(url, content=body, headers=bad_signature | key).json()

    garbage = b'{"id": "not a number", "total_price": "1.00", "currency": "USD"}'
    dead = httpx.post(url, content=garbage, headers=signed_headers(garbage) | key, timeout=10)
    assert dead.status_code == 200 and dead.json()["status"] == "dead_lettered"
    assert order_view(system, a["api_key"], "515151").status_code == 404


def test_metric_labels_are_bounded_and_carry_no_ids(system, tenants):
    for url in (f"{system.api_url}/metrics", system.worker_metrics_url):
        for (name, labels), _ in scrape(url).items():
            for label, label_value in labels:
                assert label in ALLOWED_LABELS, f"{url}: {name} has label {label}"
                assert not ID_LIKE.search(label_value), f"{url}: {name}{{{label}={label_value!r}}}"


def test_the_worker_connects_as_its_own_role_and_only_it_may_list_tenants(system, tenants):
    urls = {name: system.ready[f"{name}database_url"] for name in ("", "worker_", "owner_")}
    roles = {name: psycopg.conninfo.conninfo_to_dict(url)["user"] for name, url in urls.items()}
    assert len(set(roles.values())) == 3, roles

    def connected_roles() -> set[str]:
        with psycopg.connect(urls["owner_"]) as conn:
            return {row[0] for row in conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()")}

    # The sweeper runs every second from the start: the worker's pool is open by now or soon.
    deadline = time.monotonic() + 30
    while roles["worker_"] not in (seen := connected_roles()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {roles["worker_"], roles[""]} <= seen, f"connected: {seen}; roles: {roles}"
    assert seen <= {roles["worker_"], roles[""]}, "only the API and the worker are connected"

    # The sweeper asks, as the worker role, which tenants have work and which jobs died.
    sweep = {"task_name": "maintenance.sweep_pending"}
    deadline = time.monotonic() + 30
    while (value(samples := scrape(system.worker_metrics_url), "celery_task_success_total", **sweep)
           == 0 and time.monotonic() < deadline):
        time.sleep(0.2)
    assert value(samples, "celery_task_success_total", **sweep) > 0, "no sweep succeeded in 30 s"
    assert value(samples, "celery_task_failure_total", **sweep) == 0

    with psycopg.connect(urls[""]) as runtime:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            runtime.execute("SELECT * FROM tenants_with_touchpoints('-infinity')")
    with psycopg.connect(urls["worker_"]) as worker:
        worker.execute("SELECT * FROM tenants_with_touchpoints('-infinity')").fetchall()
