"""Deliveries of one order racing each other through the real API: the database's unique keys
decide, so one event row, one order, one sale; and duplicates schedule no work at all."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from attribution_checks import assert_attributed_exactly_once, wait_until_attributed
from fault_system import WEBHOOK_PATH, FaultSystem, dedupe_key, order_body, poll, signed_headers

pytestmark = pytest.mark.faults

CONCURRENT = 50
DUPLICATES = 1000


def post_together(system: FaultSystem,
                  deliveries: list[tuple[bytes, dict]]) -> list[httpx.Response]:
    """Each delivery from its own thread, released at once so they race in the API."""
    start = threading.Barrier(len(deliveries))

    def post(delivery: tuple[bytes, dict]) -> httpx.Response:
        body, headers = delivery
        with httpx.Client(base_url=system.api_url, timeout=30) as client:
            start.wait(timeout=30)
            return client.post(WEBHOOK_PATH, content=body, headers=headers)

    with ThreadPoolExecutor(len(deliveries)) as threads:
        return list(threads.map(post, deliveries))


def statuses(responses: list[httpx.Response]) -> Counter:
    return Counter((r.status_code, r.json().get("status")) for r in responses)


def test_fifty_racing_deliveries_of_one_event_store_it_once(system):
    tenant = system.create_tenant("racing deliveries")
    body = order_body(710001)
    responses = post_together(system, [(body, signed_headers(tenant, body, "race-1"))] * CONCURRENT)

    assert statuses(responses) == {(200, "accepted"): 1, (200, "duplicate"): CONCURRENT - 1}, \
        f"{statuses(responses)}\n{system.logs()}"
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert system.count("webhook_events", tenant.tenant_id) == 1
    assert system.count("webhook_events", tenant.tenant_id,
                        f"dedupe_key = '{dedupe_key('race-1')}'") == 1
    assert system.count("orders", tenant.tenant_id) == 1
    assert system.count("revenue_entries", tenant.tenant_id) == 1
    wait_until_attributed(system, tenant.tenant_id, 1, timeout=30)
    assert assert_attributed_exactly_once(system, tenant.tenant_id)["net_minor"] == 1050


def test_fifty_racing_events_of_one_order_make_one_order_and_one_sale(system):
    tenant = system.create_tenant("racing events")
    body = order_body(710002)
    topics = ("orders/create", "orders/updated")
    deliveries = [(body, signed_headers(tenant, body, f"race-order-{i}", topics[i % 2]))
                  for i in range(CONCURRENT)]
    responses = post_together(system, deliveries)

    assert statuses(responses) == {(200, "accepted"): CONCURRENT}, \
        f"{statuses(responses)}\n{system.logs()}"
    assert system.count("webhook_events", tenant.tenant_id) == CONCURRENT
    assert system.count("orders", tenant.tenant_id) == 1
    assert system.count("revenue_entries", tenant.tenant_id, "kind = 'sale'") == 1
    assert system.count("revenue_entries", tenant.tenant_id) == 1
    wait_until_attributed(system, tenant.tenant_id, 1, timeout=30)
    assert assert_attributed_exactly_once(system, tenant.tenant_id)["net_minor"] == 1050


def scrape(url: str) -> dict[tuple, float]:
    samples = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples: dict[tuple, float], name: str, **labels: str) -> float:
    """One sample, or the sum over every label set when no labels are given."""
    if labels:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)
    return sum(value for (sample, _), value in samples.items() if sample == name)


def work_counters(system: FaultSystem, tenant_id) -> dict[str, float]:
    """Everything that would grow if a delivery caused work, across the API and the worker."""
    api, worker = scrape(f"{system.api_url}/metrics"), scrape(system.worker_metrics_url)
    return {
        "api chains scheduled": metric(api, "attribution_chains_scheduled_total"),
        "worker chains scheduled": metric(worker, "attribution_chains_scheduled_total"),
        "orders attributed": metric(worker, "orders_attributed_total"),
        "recomputes run": metric(worker, "celery_task_success_total",
                                 task_name="attribution.recompute_window"),
        "tenant recompute jobs": system.count("recompute_jobs", tenant_id),
        "tenant events": system.count("webhook_events", tenant_id),
        "tenant pending orders": system.count("pending_orders", tenant_id),
    }


def sweeps(system: FaultSystem) -> float:
    return metric(scrape(system.worker_metrics_url), "celery_task_success_total",
                  task_name="maintenance.sweep_pending")


def test_a_thousand_duplicate_deliveries_schedule_no_recompute(system):
    tenant = system.create_tenant("duplicate storm")
    body = order_body(720001)
    headers = signed_headers(tenant, body, "storm-1")
    first = httpx.post(f"{system.api_url}{WEBHOOK_PATH}", content=body, headers=headers, timeout=10)
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    wait_until_attributed(system, tenant.tenant_id, 1, timeout=30)
    system.wait_until_idle()
    before = work_counters(system, tenant.tenant_id)
    duplicates_before = metric(scrape(f"{system.api_url}/metrics"), "events_duplicate_total")

    with (httpx.Client(base_url=system.api_url, timeout=30) as client,
          ThreadPoolExecutor(16) as threads):
        responses = list(threads.map(
            lambda _: client.post(WEBHOOK_PATH, content=body, headers=headers), range(DUPLICATES)))
    assert statuses(responses) == {(200, "duplicate"): DUPLICATES}, statuses(responses)
    assert {r.json()["event_id"] for r in responses} == {first.json()["event_id"]}

    # Absence of work is only shown by waiting: until the sweeper has looked three more times,
    # past its grace period, any chain a duplicate wrongly asked for would have been scheduled.
    looked = sweeps(system)
    poll("three more sweeps", lambda: sweeps(system) >= looked + 3, 30, system.logs)
    assert metric(scrape(f"{system.api_url}/metrics"), "events_duplicate_total") \
        - duplicates_before == DUPLICATES
    assert work_counters(system, tenant.tenant_id) == before, system.logs()
