"""Helpers for tests on real PostgreSQL: tenants, signed Shopify deliveries, the whole chain."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from dataclasses import dataclass
from datetime import timedelta

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.connectors import store as connectors
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.attribution.tenant_attribution import rules_in_force
from skeldir.domains.ingestion import touchpoints
from skeldir.domains.ingestion.inbox import IngestResult, ingest, record_dead_event
from skeldir.domains.providers.shopify import ShopifyProvider
from skeldir.domains.reporting.registry import REFRESHED
from skeldir.operations import tenants

SHOPIFY_SECRET = "shpss_test_secret"
CHAIN_STALE = timedelta(seconds=60)


@dataclass(frozen=True)
class TenantUnderTest:
    tenant_id: uuid.UUID
    api_key: str
    webhook_key: str
    collect_key: str
    source_id: uuid.UUID
    source_url: str


def create_tenant(settings: Settings, name: str = "shop") -> TenantUnderTest:
    with owner_connection(settings) as conn:
        tenant = tenants.create_tenant(conn, secret_box(settings), name)
        source = tenants.add_source(conn, secret_box(settings), tenant_id=tenant.tenant_id,
                                    provider="shopify", secret=SHOPIFY_SECRET,
                                    public_url="http://test")
    return TenantUnderTest(tenant.tenant_id, tenant.api_key, tenant.webhook_key, tenant.collect_key,
                           source.source_id, source.url)


def shopify_delivery(body: bytes, topic: str = "orders/create", event_id: str | None = None):
    headers = {"x-shopify-topic": topic}
    if event_id:
        headers["x-shopify-event-id"] = event_id
    return ShopifyProvider().parse(body, headers)


async def ingest_shopify(pool, tenant: TenantUnderTest, body: bytes, *, topic: str = "orders/create",
                         event_id: str | None = None, stitch_key: bytes | None = None) -> IngestResult:
    """`stitch_key` (the tenant's, or any fixed key) makes the order's references stitch keys,
    its email a customer; the webhook edge passes the tenant's own."""
    return await ingest(pool, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                        provider="shopify", delivery=shopify_delivery(body, topic, event_id),
                        chain_stale=CHAIN_STALE, stitch_key=stitch_key)


def order_body(order_id: int, total: str = "10.50", currency: str = "USD",
               created_at: str = "2026-01-25T12:34:56Z", **extra: object) -> bytes:
    return json.dumps({"id": order_id, "total_price": total, "currency": currency,
                       "created_at": created_at, **extra}).encode()


async def populate_every_tenant_table(settings: Settings, pool, tenant: TenantUnderTest) -> None:
    """Run the real flows that write tenant rows, so every tenant table has one for `tenant`;
    `pool` is the worker role's, as the flows include the worker's recompute."""
    box = secret_box(settings)
    # An order with an email: its customer gets a row in customers.
    result = await ingest_shopify(pool, tenant, order_body(910001, email="populate@example.invalid"),
                                  event_id="populate-1", stitch_key=b"populate-stitch-key")
    assert result.status == "accepted"
    await pool.fetchval("SELECT claim_chain($1, $2)", tenant.tenant_id, CHAIN_STALE)
    await record_dead_event(pool, box, tenant_id=tenant.tenant_id, source_id=tenant.source_id,
                            provider="shopify", topic="orders/create", reason="test",
                            body=b"{}", headers={})
    job_id = uuid.uuid4()
    await start_run(pool, tenant.tenant_id, job_id)
    outcome = await recompute_pending(pool, tenant.tenant_id, batch_size=100)
    await finish_run(pool, tenant.tenant_id, job_id, outcome)
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        stitch = await touchpoints.tenant_stitch_key(conn, box, tenant.tenant_id)
    visit = touchpoints.validate(
        {"id": "tp-1", "visitor_id": "v-1", "occurred_at": "2026-01-25T12:00:00Z",
         "url": "https://shop.example/?utm_source=google&utm_medium=cpc", "cart_token": "c1"},
        0, stitch, datetime.now(timezone.utc))
    assert (await touchpoints.store(pool, tenant.tenant_id, [visit], rules_in_force)).new == 1
    with owner_connection(settings) as conn:
        # Written by operator commands and the scheduled learner (as the owner).
        conn.execute("INSERT INTO channel_rule_sets (tenant_id, version, document, fingerprint)"
                     " VALUES (%s, 1, '{}', 'x')", (tenant.tenant_id,))
        conn.execute("INSERT INTO model_weights (tenant_id, model, version, weights, paths, conversions,"
                     " window_start, window_end) VALUES (%s, 'markov', 1, '{}', 0, 0, now(), now())",
                     (tenant.tenant_id,))
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        # What the API's audit middleware writes for each keyed request.
        await conn.execute(
            "INSERT INTO audit_log (tenant_id, key_id, scope, method, route, status, duration_ms)"
            " VALUES ($1, $2, 'admin', 'GET', '/api/keys', 200, 1)", tenant.tenant_id, uuid.uuid4())
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        # What POST /api/spend and `skeldir spend load` write.
        await conn.execute(
            "INSERT INTO ad_spend (tenant_id, day, platform, account_id, campaign_id, currency,"
            " spend_minor) VALUES ($1, '2026-01-25', 'meta', 'act_1', 'c1', 'USD', 5000)",
            tenant.tenant_id)
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        # What `skeldir connector add` and POST /api/connectors write.
        await connectors.add(conn, box, tenant.tenant_id, "meta", "act_1",
                             {"access_token": "populate-token"})
        # What an erasure or data request records (POST /api/privacy/erasures, a Shopify
        # compliance webhook).
        await conn.execute(
            "INSERT INTO privacy_requests (tenant_id, request_id, kind, origin)"
            " VALUES ($1, $2, 'data_request', 'api')", tenant.tenant_id, uuid.uuid4())
    # Leave one order pending and one dirty, so those tables hold a row too.
    await ingest_shopify(pool, tenant, order_body(910002), event_id="populate-2")
    async with tenant_transaction(pool, tenant.tenant_id) as conn:
        await conn.execute(
            "INSERT INTO report_dirty_orders (tenant_id, order_id)"
            " SELECT tenant_id, order_id FROM orders ON CONFLICT DO NOTHING")
        for report in REFRESHED:
            await report.refresh(conn, tenant.tenant_id, [
                r["order_id"] for r in await conn.fetch("SELECT order_id FROM orders")])


async def model_allocations(conn, external_order_id: str) -> dict[str, dict]:
    """Per model, the stored credits of one order: channels credited (net or gross non-zero),
    their net credits, and the model version; read through the packed row."""
    from skeldir.domains.attribution.packing import unpack

    row = await conn.fetchrow(
        "SELECT a.models, a.model_versions, a.channels, a.credits FROM order_attributions a"
        " JOIN orders o USING (tenant_id, order_id) WHERE o.external_order_id = $1",
        external_order_id,
    )
    if row is None:
        return {}
    credits = unpack(row["credits"], len(row["models"]), len(row["channels"]))
    result = {}
    for index, model in enumerate(row["models"]):
        net, gross = credits[:, 0, index].tolist(), credits[:, 1, index].tolist()
        kept = [c for c in range(len(net)) if net[c] or gross[c]]
        result[model] = {
            "model": model,
            "model_version": row["model_versions"][index],
            "channels": [row["channels"][c] for c in kept],
            "credits_minor": [net[c] for c in kept],
            "gross_credits_minor": [gross[c] for c in kept],
        }
    return result


def ledger(database: Settings, tenant) -> dict[str, list]:
    """The tenant's orders, entries, pending marks and customers, without the ids and times the
    database makes up (what an entry, mark or customer points at comes as its order's id)."""
    queries = {
        "orders": "SELECT to_jsonb(o) - '{tenant_id,order_id,created_at,updated_at}'::text[]"
                  " FROM orders o WHERE o.tenant_id = %s",
        "entries": "SELECT to_jsonb(e) - '{tenant_id,entry_id,order_id,event_id}'::text[]"
                   " || jsonb_build_object('order', o.external_order_id)"
                   " FROM revenue_entries e JOIN orders o USING (tenant_id, order_id)"
                   " WHERE e.tenant_id = %s",
        "pending": "SELECT p.order_version, o.external_order_id FROM pending_orders p"
                   " JOIN orders o USING (tenant_id, order_id) WHERE p.tenant_id = %s",
        "customers": "SELECT c.customer_key, o.external_order_id FROM customers c"
                     " JOIN orders o ON o.tenant_id = c.tenant_id"
                     " AND o.order_id = c.first_order_id WHERE c.tenant_id = %s",
        "events": "SELECT dedupe_key, external_order_id FROM webhook_events"
                  " WHERE tenant_id = %s",
    }
    with owner_connection(database) as conn:
        return {name: sorted(conn.execute(sql, (tenant.tenant_id,)).fetchall(), key=repr)
                for name, sql in queries.items()}
