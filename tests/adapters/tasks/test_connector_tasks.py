"""The connector tasks on real PostgreSQL against the local platform server: beat fans out one
pull per connector over the right days, skips those that need a new grant, backfills chain
chunk after chunk; and end to end, a pull shows in GET /api/reports/spend, and after the
platform restates a day and drops an ad, the next pull makes the report equal the new figures."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from ads_platform_server import Reply, platform, platform_server, platform_settings  # noqa: F401
from ads_shapes import meta_page, meta_row
from db_helpers import create_tenant
from skeldir.adapters.app import create_app
from skeldir.adapters.tasks import connectors as connector_tasks
from skeldir.adapters.tasks import runtime as task_runtime
from skeldir.adapters.tasks.celery_app import create_celery
from skeldir.adapters.tasks.runtime import WorkerRuntime
from skeldir.base.db import owner_connection

SEARCH = "/v21/customers/1234567890/googleAds:search"
GOOGLE_CREDENTIALS = {"developer_token": "dev-token", "client_id": "client-id",
                      "client_secret": "client-secret", "refresh_token": "1//refresh"}


@pytest.fixture
def system(database, platform, monkeypatch):  # noqa: F811
    """The API and a worker runtime over the test database, both pointed at the local
    platform; tasks the worker sends are recorded in `sent`, not published."""
    settings = platform_settings(platform.url, replace(database, broker_url="memory://"),
                                 connector_backfill_chunk_days=3)
    app = create_celery(settings)
    app.set_current()
    rt = WorkerRuntime(settings)
    monkeypatch.setattr(task_runtime, "_runtime", rt)
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **_: sent.append((name, args)))
    with TestClient(create_app(settings)) as client:
        yield client, rt, sent
    rt.run(rt.pool.close())
    rt.loop.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def connect(client, tenant, platform_name="google_ads", account="123-456-7890",
            credentials=None) -> str:
    answer = client.post("/api/connectors", headers=bearer(tenant.api_key), json={
        "platform": platform_name, "account_id": account,
        "credentials": credentials or GOOGLE_CREDENTIALS})
    assert answer.status_code == 201, answer.text
    return answer.json()["connector_id"]


def ads_row(day: str, ad: str, cost_micros: str) -> dict:
    return {"customer": {"currencyCode": "USD"},
            "campaign": {"id": "111", "name": "Search"}, "adGroup": {"id": "222", "name": "Shoes"},
            "adGroupAd": {"ad": {"id": ad}}, "segments": {"date": day},
            "metrics": {"costMicros": cost_micros, "impressions": "100", "clicks": "5"}}


def serve_google(platform, rows: list[dict]) -> None:  # noqa: F811
    """Google answering the ad query with `rows` and the campaign query with their totals."""
    totals: dict[tuple, dict] = {}
    for row in rows:
        key = (row["campaign"]["id"], row["segments"]["date"])
        total = totals.setdefault(key, {**row, "metrics": {"costMicros": "0", "impressions": "0",
                                                           "clicks": "0"}})
        total["metrics"] = {k: str(int(total["metrics"][k]) + int(row["metrics"][k]))
                            for k in total["metrics"]}
    campaign_rows = [{k: v for k, v in t.items() if k not in ("adGroup", "adGroupAd")}
                     for t in totals.values()]
    platform.on("POST", "/token", Reply(body={"access_token": "ya29.t", "expires_in": 3599,
                                              "token_type": "Bearer"}))
    platform.on("POST", SEARCH, lambda seen: Reply(body={
        "results": campaign_rows if " FROM campaign " in seen.json["query"] else rows,
        "fieldMask": "campaign.id"}))


def spend_report(client, tenant) -> list[tuple]:
    answer = client.get("/api/reports/spend?from=2026-12-01&to=2026-12-02",
                        headers=bearer(tenant.api_key))
    assert answer.status_code == 200, answer.text
    return [(i["day"], i["ad_id"], i["spend_cents"], i["spend_reporting_cents"])
            for i in answer.json()["items"]]


def performance_spend(client, tenant) -> dict[tuple, int]:
    """The performance report's spend per (platform, campaign, ad set, ad) over the two days."""
    answer = client.get("/api/reports/performance", headers=bearer(tenant.api_key), params={
        "model": "linear", "from": "2026-12-01", "to": "2026-12-02", "level": "ad"})
    assert answer.status_code == 200, answer.text
    return {(i["platform"], i["campaign_id"], i["adset_id"], i["ad_id"]): i["spend_cents"]
            for i in answer.json()["items"] if i["spend_cents"]}


def test_a_pulled_restatement_makes_the_report_equal_the_new_figures(system, platform):  # noqa: F811
    client, rt, _ = system
    tenant = create_tenant(rt.settings)
    connector = connect(client, tenant)
    serve_google(platform, [ads_row("2026-12-01", "A", "10000000"),
                            ads_row("2026-12-01", "B", "2500000"),
                            ads_row("2026-12-02", "A", "12345678")])
    assert connector_tasks.pull_connector(str(tenant.tenant_id), connector, "2026-12-01",
                                          "2026-12-02") == "ok"
    assert spend_report(client, tenant) == [
        ("2026-12-01", "A", 1000, 1000), ("2026-12-01", "B", 250, 250),
        ("2026-12-02", "A", 1235, 1235)]
    assert performance_spend(client, tenant) == {("google_ads", "111", "222", "A"): 2235,
                                                 ("google_ads", "111", "222", "B"): 250}
    # The platform restates the 2nd and no longer reports ad B.
    serve_google(platform, [ads_row("2026-12-01", "A", "10000000"),
                            ads_row("2026-12-02", "A", "13000000")])
    connector_tasks.pull_connector(str(tenant.tenant_id), connector, "2026-12-01", "2026-12-02")
    assert spend_report(client, tenant) == [
        ("2026-12-01", "A", 1000, 1000), ("2026-12-02", "A", 1300, 1300)]
    assert performance_spend(client, tenant) == {("google_ads", "111", "222", "A"): 2300}
    searches = platform.seen("POST", SEARCH)
    assert len(searches) == 4 and all("BETWEEN '2026-12-01' AND '2026-12-02'" in s.json["query"]
                                      for s in searches)
    status = client.get("/api/status", headers=bearer(tenant.api_key)).json()["connectors"]
    assert [(c["status"], c["last_error"]) for c in status] == [("ok", None)]


def test_beat_pulls_recent_and_restated_days_of_every_connector_but_those_needing_reauth(
        system, platform):  # noqa: F811
    client, rt, sent = system
    tenant = create_tenant(rt.settings)
    good = connect(client, tenant)
    revoked = connect(client, tenant, "meta", "act_9", {"access_token": "t"})
    with owner_connection(rt.settings) as conn:
        conn.execute("UPDATE connectors SET status = 'needs_reauth' WHERE connector_id = %s",
                     (revoked,))
        conn.execute("UPDATE connectors SET status = 'ok', last_success_at = now() - interval"
                     " '2 hours' WHERE connector_id = %s", (good,))
    today = datetime.now(timezone.utc).date()
    connector_tasks.pull_recent()
    connector_tasks.pull_restated()
    mine = [(name, args[2:]) for name, args in sent if args[1] in (good, revoked)]
    assert mine == [
        ("connectors.pull", [(today - timedelta(days=1)).isoformat(), today.isoformat()]),
        ("connectors.pull", [(today - timedelta(days=27)).isoformat(), today.isoformat()])]
    assert all(args[1] != revoked for _, args in sent)
    # Lag: at least the two hours since this tenant's Google Ads connector last succeeded.
    assert REGISTRY.get_sample_value("connector_lag_seconds", {"platform": "google_ads"}) >= 7200


def test_the_beat_schedule_holds_the_connector_pulls(database):
    schedule = create_celery(database).conf.beat_schedule
    assert schedule["pull-connectors-recent-days"]["schedule"] == 3600.0
    assert schedule["pull-connectors-restated-days"]["schedule"] == 86400.0
    assert schedule["continue-connector-backfills"]["task"] == "connectors.continue_backfills"


def test_a_backfill_asked_over_the_api_is_pulled_by_chained_chunks(system, platform):  # noqa: F811
    client, rt, sent = system
    tenant = create_tenant(rt.settings)
    connector = connect(client, tenant, "meta", "act_123", {"access_token": "t"})

    def first_day(seen):
        return Reply(body=meta_page([meta_row(json.loads(seen.query["time_range"])["since"],
                                              "1", "1.00")]))

    platform.on("GET", "/v23.0/act_123/insights", first_day)
    client.post(f"/api/connectors/{connector}/backfill", headers=bearer(tenant.api_key),
                json={"from": "2026-11-01", "to": "2026-11-07"})
    connector_tasks.continue_backfills()
    outcomes = []
    for _ in range(10):  # bounded: 7 days in chunks of 3 are 3 chunks and a "done"
        mine = [args for name, args in sent if name == "connectors.backfill_chunk"
                and args[1] == connector]
        sent.clear()
        if not mine:
            break
        outcomes.append(connector_tasks.backfill_chunk(*mine[0]))
    assert outcomes == ["ok", "ok", "ok", "done"]
    with owner_connection(rt.settings) as conn:
        days = [r[0].isoformat() for r in conn.execute(
            "SELECT day FROM ad_spend WHERE tenant_id = %s ORDER BY day",
            (tenant.tenant_id,)).fetchall()]
    assert days == ["2026-11-01", "2026-11-04", "2026-11-07"]
