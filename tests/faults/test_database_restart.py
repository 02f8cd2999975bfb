"""PostgreSQL stops and starts again while a client posts webhooks without pause.

While it is down the API answers 503 with Retry-After (problem+json), never 200 and never 500,
for webhooks and reads alike; a 200 always means the event is stored, and a 503 that was not
retried means it is not; the API and the worker recover by themselves, without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import httpx
import pytest

from attribution_checks import assert_attributed_exactly_once, wait_until_attributed
from fault_system import (
    WEBHOOK_PATH,
    FaultSystem,
    Tenant,
    dedupe_key,
    order_body,
    poll,
    signed_headers,
)

pytestmark = pytest.mark.faults

PROBLEM_JSON = "application/problem+json"
# How long the client keeps retrying one event before it counts it as lost.
RETRY_FOR_SECONDS = 60.0
# Long enough for every pooled connection of the API and the worker to be found dead.
OUTAGE_SECONDS = 2.0


@dataclass(frozen=True)
class Answer:
    event_id: str
    sent: float
    received: float
    status: int | None  # None: no HTTP answer at all
    outcome: str | None  # the body's "status", or the transport error
    retry_after: str | None
    content_type: str


def post(client: httpx.Client, tenant: Tenant, event_id: str, body: bytes) -> Answer:
    sent = time.monotonic()
    try:
        response = client.post(WEBHOOK_PATH, content=body,
                               headers=signed_headers(tenant, body, event_id))
    except httpx.HTTPError as error:
        return Answer(event_id, sent, time.monotonic(), None, repr(error), None, "")
    try:
        outcome = response.json().get("status")
    except ValueError:
        outcome = response.text[:200]
    return Answer(event_id, sent, time.monotonic(), response.status_code, str(outcome),
                  response.headers.get("retry-after"), response.headers.get("content-type", ""))


class WebhookLoad(threading.Thread):
    """One provider posting new orders back to back, retrying a 503 as providers do."""

    def __init__(self, system: FaultSystem, tenant: Tenant) -> None:
        super().__init__(name="webhook-load", daemon=True)
        self.system = system
        self.tenant = tenant
        self.answers: list[Answer] = []
        self.events: list[str] = []
        self.stopping = threading.Event()
        self.give_up_at = float("inf")

    def stop(self, retry_for: float) -> None:
        """Send no new event; retry the one in hand for at most `retry_for` seconds more."""
        self.give_up_at = time.monotonic() + retry_for
        self.stopping.set()
        self.join(retry_for + 15)

    def run(self) -> None:
        with httpx.Client(base_url=self.system.api_url, timeout=10) as client:
            n = 0
            while not self.stopping.is_set():
                n += 1
                event_id = f"load-{n}"
                self.events.append(event_id)
                body = order_body(740000 + n, total=f"{n % 90 + 1}.{n % 100:02d}")
                given_up_at = time.monotonic() + RETRY_FOR_SECONDS
                while time.monotonic() < min(given_up_at, self.give_up_at):
                    answer = post(client, self.tenant, event_id, body)
                    self.answers.append(answer)
                    if answer.status != 503:
                        break
                    time.sleep(0.05)

    def count(self, status: int, since: float = 0.0) -> int:
        return sum(1 for a in list(self.answers) if a.status == status and a.sent >= since)


def get(client: httpx.Client, path: str, **headers: str) -> httpx.Response:
    try:
        return client.get(path, headers=headers)
    except httpx.HTTPError as error:
        raise AssertionError(f"GET {path}: no answer ({error!r})") from error


def assert_unavailable(response: httpx.Response, logs: str) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 503, f"{where}: {response.status_code} {response.text}\n{logs}"
    assert response.headers.get("retry-after") == "5", where
    assert response.headers["content-type"].startswith(PROBLEM_JSON), where
    assert response.json()["status"] == 503, where


def test_the_api_answers_503_while_postgres_restarts_and_loses_no_accepted_event(system):
    tenant = system.create_tenant("database restart")
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    report = f"/api/reports/daily-revenue?from={today}&to={today}"
    api_pid = system.api.pid
    load = WebhookLoad(system, tenant)
    load.start()
    probes: list[Answer] = []
    try:
        poll("the load is being stored", lambda: load.count(200) >= 20, 30, system.logs)
        system.postgres.stop()
        down_at = time.monotonic()
        with httpx.Client(base_url=system.api_url, timeout=10) as client:
            assert_unavailable(get(client, "/healthz"), system.logs())
            assert_unavailable(get(client, report, **auth), system.logs())
            # Deliveries that get a 503 and are never retried: they must not be stored.
            for n in range(3):
                body = order_body(749000 + n)
                probes.append(post(client, tenant, f"probe-{n}", body))
            poll("the load meets a long enough outage",
                 lambda: load.count(503, since=down_at) >= 3
                 and time.monotonic() - down_at >= OUTAGE_SECONDS, 30, system.logs)
            up_at = time.monotonic()
            system.postgres.start()

            poll("/healthz answers 200 again",
                 lambda: get(client, "/healthz").status_code == 200, 30, system.logs)
            poll("the report answers 200 again",
                 lambda: get(client, report, **auth).status_code == 200, 30, system.logs)
            poll("the load is stored again", lambda: load.count(200, since=up_at) >= 20, 30,
                 system.logs)
    finally:
        system.postgres.start()  # already up unless the test failed during the outage
        load.stop(retry_for=RETRY_FOR_SECONDS)
    assert not load.is_alive(), "the load thread did not finish"
    assert system.api.pid == api_pid and system.api.poll() is None, "the API was restarted"

    answers = load.answers
    kinds = Counter((a.status, a.outcome if a.status != 503 else None) for a in answers + probes)
    assert set(kinds) <= {(200, "accepted"), (200, "duplicate"), (503, None)}, \
        f"answers other than 200 and 503: {kinds}\n{system.logs()}"
    assert all(p.status == 503 for p in probes), probes
    unavailable = [a for a in answers + probes if a.status == 503]
    assert all(a.retry_after == "5" and a.content_type.startswith(PROBLEM_JSON)
               for a in unavailable), unavailable[:3]
    while_down = [a for a in answers if a.sent > down_at and a.received < up_at]
    assert while_down and all(a.status == 503 for a in while_down), \
        Counter(a.status for a in while_down)

    by_event = defaultdict(list)
    for answer in answers:
        by_event[answer.event_id].append(answer)
    assert all(by_event[e][-1].status == 200 for e in load.events), "an event was never stored"
    assert all(sum(a.outcome == "accepted" for a in by_event[e]) <= 1 for e in load.events)
    with system.owner() as conn:
        stored = Counter(r[0] for r in conn.execute(
            "SELECT dedupe_key FROM webhook_events WHERE tenant_id = %s", (tenant.tenant_id,)))
    assert stored == Counter(dedupe_key(e) for e in load.events), \
        "stored events differ from those answered 200 (a probe stored, or one stored twice)"

    wait_until_attributed(system, tenant.tenant_id, len(load.events), timeout=90)
    assert_attributed_exactly_once(system, tenant.tenant_id)
