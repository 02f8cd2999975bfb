"""PayPal on the ledger: a capture and its refund (linked by the PayPal order id) net exactly."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from db_helpers import create_tenant
from skeldir.base.config import Settings
from skeldir.base.db import tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.ingestion.inbox import ingest
from skeldir.domains.providers.paypal import PayPalProvider
from skeldir.domains.reporting.queries import order_attribution
from skeldir.domains.reporting.refresh import refresh_tenant

pytestmark = pytest.mark.anyio


def capture(order_id: str, capture_id: str, value: str) -> dict:
    return {"id": f"WH-{capture_id}", "event_version": "1.0", "create_time": "2026-03-05T10:00:00Z",
            "resource_type": "capture", "resource_version": "2.0", "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "resource": {"id": capture_id, "status": "COMPLETED", "amount": {"currency_code": "EUR", "value": value},
                         "supplementary_data": {"related_ids": {"order_id": order_id}},
                         "create_time": "2026-03-05T09:59:58Z", "update_time": "2026-03-05T09:59:59Z"}}


def refund(order_id: str, capture_id: str, refund_id: str, value: str) -> dict:
    return {"id": f"WH-{refund_id}", "event_version": "1.0", "create_time": "2026-03-06T10:00:00Z",
            "resource_type": "refund", "resource_version": "2.0", "event_type": "PAYMENT.CAPTURE.REFUNDED",
            "resource": {"id": refund_id, "status": "COMPLETED", "amount": {"currency_code": "EUR", "value": value},
                         "supplementary_data": {"related_ids": {"order_id": order_id, "capture_id": capture_id}},
                         "create_time": "2026-03-06T09:59:58Z", "update_time": "2026-03-06T09:59:59Z",
                         "links": [{"href": f"https://api-m.paypal.com/v2/payments/captures/{capture_id}",
                                    "rel": "up", "method": "GET"}]}}


async def test_a_paypal_refund_lowers_the_order_by_exactly_its_amount(database: Settings, worker_pool):
    tenant = create_tenant(database)
    provider = PayPalProvider()
    # The refund arrives first: the ledger keeps it and applies it when the capture arrives.
    for document in (refund("8PP000ORDER1", "3PP000CAPT1", "5PP000REF1", "4.20"),
                     capture("8PP000ORDER1", "3PP000CAPT1", "30.00")):
        delivery = provider.parse(json.dumps(document).encode(), {})
        result = await ingest(worker_pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                              provider="paypal", delivery=delivery, chain_stale=timedelta(seconds=60))
        assert result.status == "accepted"
    job = uuid.uuid4()
    await start_run(worker_pool, tenant.tenant_id, job)
    await finish_run(worker_pool, tenant.tenant_id, job,
                     await recompute_pending(worker_pool, tenant.tenant_id, batch_size=10))
    await refresh_tenant(worker_pool, tenant.tenant_id)
    async with tenant_transaction(worker_pool, tenant.tenant_id) as conn:
        view = await order_attribution(conn, "paypal", "8PP000ORDER1")
    assert (view["gross_cents"], view["refunded_cents"], view["revenue_cents"]) == (3000, 420, 2580)
    for model in view["models"].values():
        assert model["is_balanced"] and model["allocated_cents"] == 2580
        assert sum(a["gross_cents"] - a["cents"] for a in model["allocations"]) == 420
