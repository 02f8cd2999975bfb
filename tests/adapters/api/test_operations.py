"""Operations over HTTP and the CLI (real app, real PostgreSQL): listing events and dead events
with filters and cursors, replaying dead events after a parser fix, re-parsing stored events,
re-attributing a date range; scopes and tenant isolation."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from click.testing import CliRunner

from db_helpers import SHOPIFY_SECRET, create_tenant, order_body
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection
from skeldir.domains.ingestion.provider import UnprocessableEvent
from skeldir.domains.providers.shopify import ShopifyProvider

REAL_PARSE = ShopifyProvider.parse


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def read_key(client, tenant) -> str:
    created = client.post("/api/keys", json={"scope": "read"}, headers=bearer(tenant.api_key))
    return created.json()["api_key"]


def deliver(client, tenant, body: bytes, topic: str = "orders/create", event_id: str = "") -> dict:
    """A signed Shopify delivery to the tenant's source URL."""
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    headers = {"content-type": "application/json", "x-shopify-topic": topic,
               "x-shopify-hmac-sha256": base64.b64encode(digest).decode()}
    if event_id:
        headers["x-shopify-event-id"] = event_id
    response = client.post(urlsplit(tenant.source_url).path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def refusing_parser(self, body, headers):
    raise UnprocessableEvent("order.total_price is missing")


def halving_parser(self, body, headers):
    delivery = REAL_PARSE(self, body, headers)
    event = delivery.event
    entries = tuple(replace(e, amount_minor=e.amount_minor // 2) for e in event.entries)
    return dataclasses.replace(
        delivery, event=replace(event, total_minor=event.total_minor // 2, entries=entries))


def ledger_totals(database, tenant) -> dict[str, tuple[int, int, bool]]:
    with owner_connection(database) as conn:
        rows = conn.execute(
            "SELECT o.external_order_id, o.total_minor, r.amount_minor, p.order_id IS NOT NULL"
            " FROM orders o JOIN revenue_entries r USING (tenant_id, order_id)"
            " LEFT JOIN pending_orders p USING (tenant_id, order_id) WHERE o.tenant_id = %s",
            (tenant.tenant_id,)).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def settle(database, tenant) -> None:
    with owner_connection(database) as conn:
        conn.execute("DELETE FROM pending_orders WHERE tenant_id = %s", (tenant.tenant_id,))


def test_a_dead_lettered_delivery_is_replayed_after_the_parser_is_fixed(
    client, database, monkeypatch
):
    tenant, other = create_tenant(database, "A"), create_tenant(database, "B")
    reader = read_key(client, tenant)
    monkeypatch.setattr(ShopifyProvider, "parse", refusing_parser)
    dead = deliver(client, tenant, order_body(701, total="19.99"), event_id="e701")
    assert dead["status"] == "dead_lettered"
    dead_id = dead["dead_event_id"]

    listed = client.get("/api/dead-events?status=dead", headers=bearer(reader)).json()
    assert [d["dead_event_id"] for d in listed["items"]] == [dead_id]
    item = listed["items"][0]
    assert (item["reason"], item["topic"], item["replay_attempts"]) == (
        "order.total_price is missing", "orders/create", 0)
    assert "19.99" not in json.dumps(listed) and "body" not in item and "headers" not in item

    assert client.post(f"/api/dead-events/{dead_id}/replay",
                       headers=bearer(reader)).status_code == 403
    still = client.post(f"/api/dead-events/{dead_id}/replay", headers=bearer(tenant.api_key))
    assert still.json() == {"dead_event_id": dead_id, "outcome": "still_dead",
                            "reason": "order.total_price is missing"}

    monkeypatch.setattr(ShopifyProvider, "parse", REAL_PARSE)
    assert client.post(f"/api/dead-events/{dead_id}/replay",
                       headers=bearer(other.api_key)).status_code == 404
    assert client.get("/api/dead-events", headers=bearer(other.api_key)).json()["items"] == []
    replayed = client.post(f"/api/dead-events/{dead_id}/replay", headers=bearer(tenant.api_key))
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["outcome"] == "replayed" and "reason" not in body
    again = client.post(f"/api/dead-events/{dead_id}/replay", headers=bearer(tenant.api_key))
    assert again.json() == body
    assert ledger_totals(database, tenant) == {"701": (1999, 1999, True)}

    events = client.get("/api/events", headers=bearer(reader)).json()["items"]
    assert [(e["event_id"], e["external_order_id"], e["signature_verified"]) for e in events] == [
        (body["event_id"], "701", True)]
    # The provider retries the delivery: the event is stored already.
    assert deliver(client, tenant, order_body(701, total="19.99"), event_id="e701") == {
        "status": "duplicate", "event_id": body["event_id"]}
    final = client.get("/api/dead-events?status=replayed", headers=bearer(reader)).json()["items"]
    assert [(d["replayed_event_id"], d["replay_attempts"], d["last_replay_error"]) for d in final] == [
        (body["event_id"], 2, "order.total_price is missing")]


def test_listings_filter_and_page_newest_first(client, database, monkeypatch):
    tenant = create_tenant(database)
    for n in range(3):
        deliver(client, tenant, order_body(710 + n), event_id=f"c{n}")
    for n in range(2):
        deliver(client, tenant, order_body(720 + n), topic="orders/paid", event_id=f"p{n}")
    headers = bearer(tenant.api_key)

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/events", params=params, headers=headers).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["external_order_id"] for e in seen] == ["721", "720", "712", "711", "710"]
    received = [e["received_at"] for e in seen]
    assert received == sorted(received, reverse=True)

    def count(**params) -> int:
        response = client.get("/api/events", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    today = datetime.now(UTC).date().isoformat()
    assert count(topic="orders/paid") == 2
    assert count(provider="shopify", topic="orders/create") == 3
    assert count(provider="stripe") == 0
    assert count(**{"from": today, "to": today}) == 5
    assert count(**{"from": "2099-01-01"}) == 0 and count(to="2000-01-01T00:00:00Z") == 0
    assert count(**{"from": seen[1]["received_at"]}) == 2
    for bad in ({"provider": "nope"}, {"from": "yesterday"}, {"cursor": "not-a-cursor"},
                {"from": today, "to": "2000-01-01"}):
        response = client.get("/api/events", params=bad, headers=headers)
        assert response.status_code == 400, bad
        assert response.headers["content-type"].startswith("application/problem+json")

    monkeypatch.setattr(ShopifyProvider, "parse", refusing_parser)
    dead_ids = [deliver(client, tenant, order_body(730 + n), topic=topic)["dead_event_id"]
                for n, topic in enumerate(["orders/create", "orders/paid", "orders/create"])]
    first = client.get("/api/dead-events?limit=2", headers=headers).json()
    rest = client.get("/api/dead-events", params={"limit": 2, "cursor": first["next_cursor"]},
                      headers=headers).json()
    assert [d["dead_event_id"] for d in first["items"] + rest["items"]] == dead_ids[::-1]
    assert rest["next_cursor"] is None

    monkeypatch.setattr(ShopifyProvider, "parse", REAL_PARSE)
    assert client.post("/api/dead-events/replay", json={"topik": "orders/paid"},
                       headers=headers).status_code == 422
    bulk = client.post("/api/dead-events/replay", json={"topic": "orders/create", "limit": 1},
                       headers=headers).json()
    assert [(i["dead_event_id"], i["outcome"]) for i in bulk["items"]] == [
        (dead_ids[0], "replayed")]
    assert (bulk["replayed"], bulk["duplicate"], bulk["still_dead"]) == (1, 0, 0)
    remaining = client.post("/api/dead-events/replay", json={}, headers=headers).json()
    assert [i["dead_event_id"] for i in remaining["items"]] == dead_ids[1:]
    assert client.get("/api/dead-events?status=dead", headers=headers).json()["items"] == []


def test_reparse_corrects_the_ledger_after_a_parser_fix(client, database, monkeypatch):
    tenant = create_tenant(database)
    monkeypatch.setattr(ShopifyProvider, "parse", halving_parser)
    deliver(client, tenant, order_body(740, total="30.00"), event_id="c740")
    deliver(client, tenant, order_body(741, total="8.00"), topic="orders/paid", event_id="p741")
    settle(database, tenant)
    assert ledger_totals(database, tenant) == {"740": (1500, 1500, False),
                                               "741": (400, 400, False)}

    monkeypatch.setattr(ShopifyProvider, "parse", REAL_PARSE)
    reader = read_key(client, tenant)
    assert client.post("/api/events/reparse", json={},
                       headers=bearer(reader)).status_code == 403
    response = client.post("/api/events/reparse", json={"topic": "orders/create"},
                           headers=bearer(tenant.api_key))
    assert response.status_code == 200, response.text
    assert response.json() == {"reparsed": 1, "changed_orders": 1, "failed": [], "failed_count": 0}
    assert ledger_totals(database, tenant) == {"740": (3000, 3000, True),
                                               "741": (400, 400, False)}
    events = client.get("/api/events?topic=orders/create", headers=bearer(reader)).json()["items"]
    assert events[0]["reparsed_at"] is not None


def test_recompute_marks_a_range_of_days(client, database):
    tenant, other = create_tenant(database, "A"), create_tenant(database, "B")
    deliver(client, tenant, order_body(750, created_at="2026-02-01T23:59:59Z"), event_id="c750")
    deliver(client, tenant, order_body(751, created_at="2026-02-02T00:00:00Z"), event_id="c751")
    deliver(client, other, order_body(752, created_at="2026-02-01T10:00:00Z"), event_id="c752")
    for shop in (tenant, other):
        settle(database, shop)
    day = {"from": "2026-02-01", "to": "2026-02-01"}
    assert client.post("/api/recompute", json=day,
                       headers=bearer(read_key(client, tenant))).status_code == 403
    marked = client.post("/api/recompute", json=day, headers=bearer(tenant.api_key))
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"marked": 1}
    assert {k: v[2] for k, v in ledger_totals(database, tenant).items()} == {
        "750": True, "751": False}
    assert ledger_totals(database, other)["752"][2] is False
    backwards = client.post("/api/recompute", json={"from": "2026-02-02", "to": "2026-02-01"},
                            headers=bearer(tenant.api_key))
    assert backwards.status_code == 400
    for not_a_day in (-2.6e-96, 1_700_000_000, "2026-02-01T00:00:00"):
        refused = client.post("/api/recompute", json={"from": not_a_day, "to": "2026-02-01"},
                              headers=bearer(tenant.api_key))
        assert refused.status_code == 422, (not_a_day, refused.text)


# --- the CLI runs the same code as the runtime role ---------------------------------------------


def run(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key,
           "SKELDIR_WORKER_DATABASE_URL": database.worker_database_url}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env)


def test_the_cli_lists_replays_and_reparses(client, database, monkeypatch):
    tenant = create_tenant(database)
    tenant_arg = ("--tenant", str(tenant.tenant_id))
    monkeypatch.setattr(ShopifyProvider, "parse", refusing_parser)
    first = deliver(client, tenant, order_body(760), event_id="c760")["dead_event_id"]
    second_dead = deliver(client, tenant, order_body(761), topic="orders/paid",
                          event_id="p761")["dead_event_id"]
    monkeypatch.setattr(ShopifyProvider, "parse", REAL_PARSE)

    listed = run(database, "dead-events", "list", *tenant_arg, "--limit", "1", "--json")
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.stdout)
    assert len(document["items"]) == 1 and document["next_cursor"]
    second = run(database, "dead-events", "list", *tenant_arg, "--limit", "1", "--json",
                 "--cursor", document["next_cursor"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["next_cursor"] is None
    assert {json.loads(second.stdout)["items"][0]["dead_event_id"],
            document["items"][0]["dead_event_id"]} == {first, second_dead}
    neither = run(database, "dead-events", "replay", *tenant_arg)
    assert neither.exit_code == 2 and "give DEAD_EVENT_IDS or --all" in neither.output
    assert "not both" not in neither.output

    one = run(database, "dead-events", "replay", *tenant_arg, first, "--json")
    assert one.exit_code == 0, one.output
    assert [i["outcome"] for i in json.loads(one.stdout)["items"]] == ["replayed"]
    assert "sweeper" in one.stderr
    rest = run(database, "dead-events", "replay", *tenant_arg, "--all", "--topic", "orders/paid")
    assert rest.exit_code == 0, rest.output
    assert "replayed: 1, duplicate: 0, still_dead: 0" in rest.stdout
    unknown = run(database, "dead-events", "replay", "--tenant", str(create_tenant(database).tenant_id),
                  first)
    assert unknown.exit_code == 1 and "no dead event" in unknown.output

    events = run(database, "events", "list", *tenant_arg, "--topic", "orders/paid")
    assert events.exit_code == 0, events.output
    assert events.stdout.count("\n") == 2 and "761" in events.stdout  # a header and one row

    monkeypatch.setattr(ShopifyProvider, "parse", halving_parser)
    reparsed = run(database, "events", "reparse", *tenant_arg, "--from", "2000-01-01", "--json")
    assert reparsed.exit_code == 0, reparsed.output
    assert json.loads(reparsed.stdout) == {"reparsed": 2, "changed_orders": 2, "failed": [],
                                           "failed_count": 0}
    assert {k: v[0] for k, v in ledger_totals(database, tenant).items()} == {"760": 525, "761": 525}
    assert run(database, "events", "list", *tenant_arg, "--provider", "nope").exit_code == 2
    assert run(database, "events", "list", *tenant_arg, "--from", "soon").exit_code == 1
