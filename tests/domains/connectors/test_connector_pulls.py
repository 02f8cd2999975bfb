"""Pulls on real PostgreSQL: a pull replaces exactly the days it covered for its account,
failures leave the ledger as it was and say why in the status, credentials are stored
encrypted, a backfill goes in bounded chunks and resumes where it stopped."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import date

import pytest
from prometheus_client import REGISTRY

from ads_platform_server import Reply, platform_settings
from ads_shapes import meta_page, meta_row
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection, tenant_transaction
from skeldir.domains.connectors import pulls, store
from skeldir.domains.connectors.api import platform_api
from skeldir.domains.spend import ledger
from skeldir.domains.spend.rows import SpendRow, validate

pytestmark = pytest.mark.anyio

INSIGHTS = "/v23.0/act_123/insights"
TOKEN = "EAAB-very-secret-token"


async def _no_sleep(_seconds: float) -> None:
    """The Api records its waits; nothing sleeps."""


@pytest.fixture
def pull_settings(database, platform):
    return platform_settings(platform.url, database, connector_attempts=2)


async def connect(pool, settings, tenant_id, platform="meta", account="act_123",
                  credentials=None) -> store.StoredConnector:
    async with tenant_transaction(pool, tenant_id) as conn:
        return await store.add(conn, secret_box(settings), tenant_id, platform, account,
                               credentials or {"access_token": TOKEN})


async def run_pull(pool, settings, tenant_id, connector_id, start, end):
    async with platform_api(settings, sleep=_no_sleep) as api:
        return await pulls.pull(pool, api, secret_box(settings), tenant_id, connector_id,
                                start, end)


async def ledger_rows(pool, tenant_id) -> list[tuple]:
    async with tenant_transaction(pool, tenant_id) as conn:
        return [tuple(r) for r in await conn.fetch(
            "SELECT day::text, account_id, ad_id, spend_minor, clicks FROM ad_spend"
            " ORDER BY day, account_id, ad_id")]


async def status_of(pool, tenant_id, connector_id) -> store.StoredConnector:
    async with tenant_transaction(pool, tenant_id) as conn:
        return await store.get(conn, connector_id)


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_pull_replaces_exactly_its_days_of_its_account(runtime_pool, pull_settings,
                                                               platform, tenant_factory):
    tenant = tenant_factory()
    connector = await connect(runtime_pool, pull_settings, tenant.tenant_id)
    # Spend that must survive: another account, and a day outside the pull.
    other = validate({"date": "2026-12-02", "platform": "meta", "account_id": "act_999",
                      "campaign_id": "c", "currency": "EUR", "spend": "9.00"}, 0)
    before = validate({"date": "2026-11-30", "platform": "meta", "account_id": "act_123",
                       "campaign_id": "c", "currency": "EUR", "spend": "8.00"}, 0)
    assert isinstance(other, SpendRow) and isinstance(before, SpendRow)
    await ledger.store(runtime_pool, tenant.tenant_id, [other, before])
    platform.on("GET", INSIGHTS, Reply(body=meta_page([
        meta_row("2026-12-01", "1", "10.00"), meta_row("2026-12-01", "2", "5.00"),
        meta_row("2026-12-02", "1", "7.25")])))
    ok_before = counter("connector_pulls_total", platform="meta", outcome="ok")
    rows_before = counter("connector_rows_total", platform="meta")
    result = await run_pull(runtime_pool, pull_settings, tenant.tenant_id,
                            connector.connector_id, date(2026, 12, 1), date(2026, 12, 2))
    assert (result.outcome, result.rows) == ("ok", 3)
    # The platform restates the 2nd and no longer reports ad 2 on the 1st.
    platform.on("GET", INSIGHTS, Reply(body=meta_page([
        meta_row("2026-12-01", "1", "10.00"), meta_row("2026-12-02", "1", "7.50")])))
    await run_pull(runtime_pool, pull_settings, tenant.tenant_id, connector.connector_id,
                   date(2026, 12, 1), date(2026, 12, 2))
    assert await ledger_rows(runtime_pool, tenant.tenant_id) == [
        ("2026-11-30", "act_123", "", 800, 0), ("2026-12-01", "act_123", "1", 1000, 12),
        ("2026-12-02", "act_123", "1", 750, 12), ("2026-12-02", "act_999", "", 900, 0)]
    stored = await status_of(runtime_pool, tenant.tenant_id, connector.connector_id)
    assert stored.status == "ok" and stored.last_success_at is not None
    assert counter("connector_pulls_total", platform="meta", outcome="ok") == ok_before + 2
    assert counter("connector_rows_total", platform="meta") == rows_before + 5


async def test_rows_split_by_a_breakdown_are_added_up_not_dropped(runtime_pool, pull_settings,
                                                                  platform, tenant_factory):
    tenant = tenant_factory()
    connector = await connect(runtime_pool, pull_settings, tenant.tenant_id)
    platform.on("GET", INSIGHTS, Reply(body=meta_page([
        meta_row("2026-12-01", "1", "10.00"), meta_row("2026-12-01", "1", "4.35")])))
    await run_pull(runtime_pool, pull_settings, tenant.tenant_id, connector.connector_id,
                   date(2026, 12, 1), date(2026, 12, 1))
    assert await ledger_rows(runtime_pool, tenant.tenant_id) == [
        ("2026-12-01", "act_123", "1", 1435, 24)]


async def test_a_failure_on_a_later_page_leaves_every_day_as_it_was(runtime_pool, pull_settings,
                                                                    platform, tenant_factory):
    tenant = tenant_factory()
    connector = await connect(runtime_pool, pull_settings, tenant.tenant_id)
    platform.on("GET", INSIGHTS, Reply(body=meta_page([meta_row("2026-12-01", "1", "1.00")])))
    await run_pull(runtime_pool, pull_settings, tenant.tenant_id, connector.connector_id,
                   date(2026, 12, 1), date(2026, 12, 1))
    second = f"{platform.url}{INSIGHTS}?after=x"
    platform.on("GET", INSIGHTS,
                Reply(body=meta_page([meta_row("2026-12-01", "9", "99.00")], second)),
                Reply(500, b"oops"))
    errors_before = counter("connector_pulls_total", platform="meta", outcome="error")
    result = await run_pull(runtime_pool, pull_settings, tenant.tenant_id,
                            connector.connector_id, date(2026, 12, 1), date(2026, 12, 1))
    assert result.outcome == "error" and "HTTP 500" in result.error
    assert await ledger_rows(runtime_pool, tenant.tenant_id) == [
        ("2026-12-01", "act_123", "1", 100, 12)]
    stored = await status_of(runtime_pool, tenant.tenant_id, connector.connector_id)
    assert (stored.status, stored.last_error) == ("error", result.error)
    assert counter("connector_pulls_total", platform="meta", outcome="error") == errors_before + 1


async def test_an_expired_grant_marks_the_connector_and_a_new_grant_clears_it(
        runtime_pool, pull_settings, platform, tenant_factory):
    tenant = tenant_factory()
    connector = await connect(runtime_pool, pull_settings, tenant.tenant_id)
    platform.on("GET", INSIGHTS, Reply(400, {"error": {
        "message": "Error validating access token: Session has expired", "type": "OAuthException",
        "code": 190, "error_subcode": 463, "fbtrace_id": "x"}}))
    result = await run_pull(runtime_pool, pull_settings, tenant.tenant_id,
                            connector.connector_id, date(2026, 12, 1), date(2026, 12, 1))
    assert result.outcome == "needs_reauth"
    stored = await status_of(runtime_pool, tenant.tenant_id, connector.connector_id)
    assert stored.status == "needs_reauth" and "Session has expired" in stored.last_error
    again = await connect(runtime_pool, pull_settings, tenant.tenant_id, account="123",
                          credentials={"access_token": "EAAB-new-token"})
    assert again.connector_id == connector.connector_id
    assert (again.status, again.last_error) == ("pending", None)
    platform.on("GET", INSIGHTS, Reply(body=meta_page([])))
    await run_pull(runtime_pool, pull_settings, tenant.tenant_id, connector.connector_id,
                   date(2026, 12, 1), date(2026, 12, 1))
    assert platform.seen()[-1].query["access_token"] == "EAAB-new-token"


async def test_credentials_are_stored_encrypted_and_bound_to_their_connector(
        runtime_pool, pull_settings, tenant_factory):
    tenant = tenant_factory()
    connector = await connect(runtime_pool, pull_settings, tenant.tenant_id)
    with owner_connection(pull_settings) as conn:
        ciphertext = conn.execute(
            "SELECT credentials_ciphertext FROM connectors WHERE connector_id = %s",
            (connector.connector_id,)).fetchone()[0]
    assert TOKEN.encode() not in bytes(ciphertext)
    assert TOKEN not in json.dumps(connector.public())
    box = secret_box(pull_settings)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        assert await store.credentials(conn, box, tenant.tenant_id, connector.connector_id) == {
            "access_token": TOKEN}
        with pytest.raises(Exception):  # another tenant's context does not decrypt it
            await store.credentials(conn, box, uuid.uuid4(), connector.connector_id)


async def test_bad_connector_configurations_are_refused_with_the_reason(
        runtime_pool, pull_settings, tenant_factory):
    tenant = tenant_factory()
    for platform_name, account, credentials, reason in [
        ("myspace", "1", {}, "platform: one of"),
        ("meta", "act_x", {"access_token": "t"}, "act_ followed by digits"),
        ("google_ads", "123-456-7890", {"developer_token": "d"}, "missing: client_id"),
        ("tiktok", "1", {"access_token": "t", "password": "p"}, "unknown: password"),
    ]:
        with pytest.raises(store.ConnectorConfigError, match=reason):
            await connect(runtime_pool, pull_settings, tenant.tenant_id, platform_name, account,
                          credentials)


async def test_a_backfill_goes_in_chunks_and_resumes_where_it_stopped(
        runtime_pool, pull_settings, platform, tenant_factory):
    tenant = tenant_factory()
    connector = await connect(runtime_pool, pull_settings, tenant.tenant_id)

    def rows_of_the_range(seen):
        since = json.loads(seen.query["time_range"])["since"]
        return Reply(body=meta_page([meta_row(since, "1", "1.00")]))

    throttled = Reply(400, {"error": {"message": "(#80004) too many calls", "code": 80004,
                                      "error_subcode": 2446079, "type": "OAuthException"}},
                      {"x-business-use-case-usage": json.dumps(
                          {"1": [{"estimated_time_to_regain_access": 600}]})})
    platform.on("GET", INSIGHTS, rows_of_the_range, throttled)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        await store.start_backfill(conn, connector.connector_id, date(2026, 10, 1),
                                   date(2026, 10, 17))
    settings = replace(pull_settings, connector_backfill_chunk_days=7)
    box = secret_box(settings)
    async with platform_api(settings, sleep=_no_sleep) as api:
        first = await pulls.backfill_step(runtime_pool, api, box, tenant.tenant_id,
                                          connector.connector_id)
        crashed = await pulls.backfill_step(runtime_pool, api, box, tenant.tenant_id,
                                            connector.connector_id)
    assert (first.outcome, first.start, first.end) == ("ok", date(2026, 10, 1), date(2026, 10, 7))
    assert (crashed.outcome, crashed.start) == ("throttled", date(2026, 10, 8))
    assert (await status_of(runtime_pool, tenant.tenant_id, connector.connector_id)
            ).backfill_next == date(2026, 10, 8)
    # Asked again for the same range, it resumes at the 8th, not at the 1st.
    platform.on("GET", INSIGHTS, rows_of_the_range)
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        resumed = await store.start_backfill(conn, connector.connector_id, date(2026, 10, 1),
                                             date(2026, 10, 17))
    assert resumed.backfill_next == date(2026, 10, 8)
    async with platform_api(settings, sleep=_no_sleep) as api:
        while await pulls.backfill_step(runtime_pool, api, box, tenant.tenant_id,
                                        connector.connector_id):
            pass
    ranges = [tuple(json.loads(s.query["time_range"]).values()) for s in platform.seen()]
    assert ranges == [("2026-10-01", "2026-10-07"), ("2026-10-08", "2026-10-14"),
                      ("2026-10-08", "2026-10-14"), ("2026-10-15", "2026-10-17")]
    done = await status_of(runtime_pool, tenant.tenant_id, connector.connector_id)
    assert done.backfill_next is None and done.public()["backfill"]["done"]
    assert [r[0] for r in await ledger_rows(runtime_pool, tenant.tenant_id)] == [
        "2026-10-01", "2026-10-08", "2026-10-15"]


async def test_no_token_reaches_the_logs_or_the_stored_error(runtime_pool, pull_settings,
                                                              platform, tenant_factory, caplog):
    tenant = tenant_factory()
    connector = await connect(runtime_pool, pull_settings, tenant.tenant_id)
    second = f"{platform.url}{INSIGHTS}?access_token={TOKEN}&after=x"
    platform.on("GET", INSIGHTS, Reply(body=meta_page([meta_row("2026-12-01", "1", "1")], second)),
                Reply(400, {"error": {"message": "Invalid parameter", "code": 100}}))
    with caplog.at_level("DEBUG"):
        result = await run_pull(runtime_pool, pull_settings, tenant.tenant_id,
                                connector.connector_id, date(2026, 12, 1), date(2026, 12, 1))
    assert result.outcome == "error" and result.error == "Meta error 100: Invalid parameter"
    assert platform.seen()[-1].query["access_token"] == TOKEN  # the token was sent...
    assert caplog.records and not [r for r in caplog.records if TOKEN in r.getMessage()
                                   or TOKEN in json.dumps(r.__dict__, default=str)]
    assert TOKEN not in (await status_of(runtime_pool, tenant.tenant_id,
                                         connector.connector_id)).last_error


async def test_two_adds_of_one_account_at_once_give_one_connector(runtime_pool, pull_settings,
                                                                  tenant_factory):
    tenant = tenant_factory()
    first, second = await asyncio.gather(
        connect(runtime_pool, pull_settings, tenant.tenant_id, credentials={"access_token": "a"}),
        connect(runtime_pool, pull_settings, tenant.tenant_id, credentials={"access_token": "b"}))
    assert first.connector_id == second.connector_id
    async with tenant_transaction(runtime_pool, tenant.tenant_id) as conn:
        assert len(await store.listed(conn)) == 1
        # Whichever came second, its credentials decrypt under the one connector id.
        assert (await store.credentials(conn, secret_box(pull_settings), tenant.tenant_id,
                                        first.connector_id))["access_token"] in ("a", "b")
