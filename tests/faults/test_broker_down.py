"""The broker stops while webhooks arrive: storing an event needs only PostgreSQL, so every
delivery is still answered 200 at once and its order is left pending; once the broker is back,
the sweeper schedules the chains that could not be published and every order is attributed."""

from __future__ import annotations

import time

import httpx
import pytest

from attribution_checks import assert_attributed_exactly_once, progress, wait_until_attributed
from fault_system import WEBHOOK_PATH, log_entries, order_body, poll, signed_headers

pytestmark = pytest.mark.faults

ORDERS = 20
# Far below any provider's delivery timeout; a publish waiting on the dead broker would blow it.
ANSWER_WITHIN_SECONDS = 2.0


def test_webhooks_stored_while_the_broker_is_down_are_attributed_once_it_is_back(system):
    tenant = system.create_tenant("broker down")
    tenant_id = str(tenant.tenant_id)
    system.redis.stop()
    answers = []
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        for n in range(ORDERS):
            body = order_body(730000 + n, total=f"{n + 1}.25")
            started = time.monotonic()
            response = client.post(WEBHOOK_PATH, content=body,
                                   headers=signed_headers(tenant, body, f"broker-down-{n}"))
            answers.append((response.status_code, response.json().get("status"),
                            round(time.monotonic() - started, 3)))
    assert all(a[:2] == (200, "accepted") for a in answers), f"{answers}\n{system.logs()}"
    slowest = max(a[2] for a in answers)
    assert slowest < ANSWER_WITHIN_SECONDS, f"slowest answer {slowest}s\n{system.logs()}"

    # The API tried to publish the tenant's chain, failed, and gave the claim back, so nothing
    # but the sweeper can schedule it now; until the broker is back nothing is attributed.
    poll("the API gave up publishing the chain",
         lambda: any(e.get("tenant_id") == tenant_id
                     for e in log_entries(system.api_log, "chain_schedule_failed")),
         15, system.logs)
    with system.owner() as conn:
        queued_at = conn.execute("SELECT queued_at FROM chain_state WHERE tenant_id = %s",
                                 (tenant.tenant_id,)).fetchone()
    assert queued_at in (None, (None,)), f"a claim is still held: {queued_at}"
    assert progress(system, tenant.tenant_id) == {
        "orders": ORDERS, "attributed": 0, "pending": ORDERS, "dirty": 0}
    assert system.count("webhook_events", tenant.tenant_id) == ORDERS

    system.redis.start()
    wait_until_attributed(system, tenant.tenant_id, ORDERS, timeout=60)
    assert any(e.get("tenant_id") == tenant_id
               for e in log_entries(system.worker_log, "sweeper_scheduled_chain")), system.logs()
    figures = assert_attributed_exactly_once(system, tenant.tenant_id)
    assert figures["net_minor"] == sum((n + 1) * 100 + 25 for n in range(ORDERS))
