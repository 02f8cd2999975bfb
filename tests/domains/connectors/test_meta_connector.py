"""The Meta connector against a local server answering in the Marketing API's shapes: the
insights request, cursor paging, async report jobs, usage headers, throttling, expired tokens,
5xx and timeouts. Real bodies (../shared/fixtures/ads/meta) where they exist."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import pytest

from ads_platform_server import Reply, ads_fixture
from ads_shapes import meta_page as page
from ads_shapes import meta_row
from skeldir.domains.connectors.api import platform_api
from skeldir.domains.connectors.meta import MetaConnector, usage_pause
from skeldir.domains.connectors.platform import NeedsReauth, PlatformError, Throttled, Transient
from skeldir.domains.connectors.pulls import fetch_rows

pytestmark = pytest.mark.anyio

META = MetaConnector()
TOKEN = {"access_token": "EAAB-secret-token"}
INSIGHTS = "/v23.0/act_123/insights"


async def test_the_insights_request_asks_for_ad_level_daily_rows_of_the_range(platform, api):
    platform.on("GET", INSIGHTS, Reply(body=page([meta_row("2026-12-01", "1", "10.50")])))
    rows = await fetch_rows(api, META, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 2))
    [seen] = platform.seen()
    assert seen.path == INSIGHTS
    assert seen.query["level"] == "ad" and seen.query["time_increment"] == "1"
    assert json.loads(seen.query["time_range"]) == {"since": "2026-12-01", "until": "2026-12-02"}
    assert set(seen.query["fields"].split(",")) >= {
        "spend", "impressions", "clicks", "campaign_id", "campaign_name", "adset_id",
        "adset_name", "ad_id", "ad_name", "account_currency", "date_start"}
    assert seen.query["access_token"] == "EAAB-secret-token"
    assert [(r.day, r.ad_id, r.spend_minor, r.currency, r.impressions) for r in rows] == [
        (date(2026, 12, 1), "1", 1050, "EUR", 1000)]


async def test_cursor_paging_goes_on_while_next_is_given_at_the_configured_base_url(platform,
                                                                                   api):
    # `next` names Meta's own host: followed as is, it would bypass the configured base URL.
    second = "https://graph.facebook.com/v23.0/act_123/insights?access_token=x&after=QVFIUmFm"
    platform.on("GET", INSIGHTS, Reply(body=page([meta_row("2026-12-01", "1", "1.00")], second)),
                Reply(body=page([meta_row("2026-12-01", "2", "2.00")])))
    rows = await fetch_rows(api, META, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert [r.ad_id for r in rows] == ["1", "2"]
    first, then = platform.seen()
    assert (first.query.get("after"), then.query.get("after")) == (None, "QVFIUmFm")
    assert {k: v for k, v in then.query.items() if k != "after"} == first.query


async def test_a_cursor_that_does_not_move_ends_the_pull(platform, api):
    platform.on("GET", INSIGHTS, Reply(body=page([], f"{platform.url}{INSIGHTS}?after=x")))
    with pytest.raises(PlatformError, match="no new cursor"):
        await META.pull(api, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert len(platform.seen()) == 2


async def test_a_real_ad_level_page_parses_and_a_missing_campaign_is_named(platform, api):
    # Keboola's v2.9 capture: three daily rows of one ad, no campaign ids, no currency.
    platform.on("GET", INSIGHTS, Reply(body=ads_fixture(
        "meta", "insights_level_ad_daily__keboola_v2.9_nested_edge.json")))
    platform.on("GET", "/v23.0/act_123", Reply(body={"currency": "CZK", "id": "act_123"}))
    raw = await META.pull(api, TOKEN, "act_123", date(2017, 9, 30), date(2017, 10, 2))
    assert [(r["date_start"], r["spend"], r["account_currency"]) for r in raw] == [
        ("2017-09-30", "11.97", "CZK"), ("2017-10-01", "11.92", "CZK"),
        ("2017-10-02", raw[2]["spend"], "CZK")]
    platform.requests.clear()
    with pytest.raises(PlatformError, match="campaign_id: required"):
        await fetch_rows(api, META, TOKEN, "act_123", date(2017, 9, 30), date(2017, 10, 2))


async def test_a_long_range_runs_as_an_async_report_job(platform, settings):
    run = "/v23.0/192025512975195"
    platform.on("POST", INSIGHTS, Reply(body=ads_fixture(
        "meta", "insights_async_01_post_report_run_id__keboola_v10.json")))
    running = json.loads(ads_fixture(
        "meta", "insights_async_02_report_run_status_completed__keboola_v10.json"))
    platform.on("GET", run,
                Reply(body={**running, "async_status": "Job Running",
                            "async_percent_completion": 40}),
                Reply(body=running))
    platform.on("GET", f"{run}/insights", Reply(body=page(
        [meta_row("2026-11-01", "1", "3.00"), meta_row("2026-11-20", "1", "4.00")])))
    async with platform_api(replace(settings, connector_meta_sync_days=7),
                            sleep=_recorded) as api:
        rows = await fetch_rows(api, META, TOKEN, "act_123", date(2026, 11, 1),
                                date(2026, 11, 28))
        assert api.waits == [1.0]  # one poll found the job running
    assert [r.spend_minor for r in rows] == [300, 400]
    [post] = platform.seen("POST")
    assert post.form["level"] == "ad" and post.form["time_increment"] == "1"
    assert json.loads(post.form["time_range"]) == {"since": "2026-11-01", "until": "2026-11-28"}
    assert [s.path for s in platform.seen("GET")] == [run, run, f"{run}/insights"]


async def test_a_failed_report_job_fails_the_pull(platform, api):
    platform.on("POST", INSIGHTS, Reply(body={"report_run_id": "77"}))
    platform.on("GET", "/v23.0/77", Reply(body={"id": "77", "async_status": "Job Failed",
                                                 "async_percent_completion": 0}))
    with pytest.raises(PlatformError, match="Job Failed"):
        await META.pull(api, TOKEN, "act_123", date(2026, 1, 1), date(2026, 3, 1))


async def test_the_real_throttling_error_waits_and_retries(platform, api):
    throttled = ads_fixture("meta", "error_80004_too_many_calls_ad_account__airbyte_issue_8773.json")
    usage = json.dumps({"123": [{"type": "ads_insights", "call_count": 100, "total_cputime": 20,
                                 "total_time": 20, "estimated_time_to_regain_access": 2}]})
    platform.on("GET", INSIGHTS,
                Reply(400, throttled, {"X-Business-Use-Case-Usage": usage}),
                Reply(400, throttled),
                Reply(body=page([meta_row("2026-12-01", "1", "1.00")])))
    rows = await fetch_rows(api, META, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert len(rows) == 1
    # Two minutes as the header said, then the backoff (1 s, doubling) for the second.
    assert api.waits == [120.0, 2.0]


async def test_throttling_that_outlasts_the_longest_wait_ends_the_pull(platform, api):
    usage = json.dumps({"123": [{"type": "ads_insights", "call_count": 100,
                                 "estimated_time_to_regain_access": 60}]})
    platform.on("GET", INSIGHTS, Reply(400, ads_fixture(
        "meta", "error_80004_too_many_calls_ad_account__airbyte_issue_8773.json"),
        {"x-business-use-case-usage": usage}))
    with pytest.raises(Throttled, match="80004"):
        await META.pull(api, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert len(platform.seen()) == 1 and api.waits == []


async def test_high_usage_on_a_good_answer_pauses_before_the_next_call(platform, api):
    second = f"{platform.url}{INSIGHTS}?after=x"
    platform.on("GET", INSIGHTS,
                Reply(body=page([meta_row("2026-12-01", "1", "1.00")], second),
                      headers={"X-App-Usage": '{"call_count":95,"total_cputime":3,"total_time":4}'}),
                Reply(body=page([meta_row("2026-12-01", "2", "1.00")])))
    await META.pull(api, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert api.waits == [60.0]


def test_usage_headers_parse_each_documented_shape():
    import httpx

    def pause(headers: dict) -> float:
        return usage_pause(httpx.Response(200, headers=headers))

    assert pause({}) == 0.0
    assert pause({"x-app-usage": '{"call_count": 28, "total_time": 25, "total_cputime": 25}'}) == 0
    assert pause({"x-ad-account-usage": "{'acc_id_util_pct': 91.5, 'reset_time_duration': 100}"}) == 60
    assert pause({"x-fb-ads-insights-throttle":
                  '{"app_id_util_pct": 100, "acc_id_util_pct": 10}'}) == 60
    assert pause({"x-business-use-case-usage": '{"1": [{"call_count": 5, '
                  '"estimated_time_to_regain_access": 3}]}'}) == 180
    assert pause({"x-app-usage": "not json"}) == 0


async def test_the_real_expired_token_error_needs_reauth_without_retrying(platform, api):
    platform.on("GET", INSIGHTS, Reply(400, ads_fixture(
        "meta", "error_190_463_session_expired__blynk_issue_435.json")))
    with pytest.raises(NeedsReauth, match="190/463"):
        await META.pull(api, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert len(platform.seen()) == 1


async def test_5xx_and_transient_errors_are_retried_then_give_up(platform, api):
    platform.on("GET", INSIGHTS, Reply(500, {"error": {"message": "An unexpected error has"
                                                       " occurred.", "code": 2,
                                                       "is_transient": True}}),
                Reply(502, b"<html>bad gateway</html>"),
                Reply(body=page([meta_row("2026-12-01", "1", "1.00")])))
    assert len(await META.pull(api, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))) == 1
    assert api.waits == [1.0, 2.0]
    platform.on("GET", INSIGHTS, Reply(503, b""))
    with pytest.raises(Transient, match="HTTP 503"):
        await META.pull(api, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert len(platform.seen()) == 3 + api.settings.connector_attempts


async def test_every_call_has_a_timeout(platform, settings):
    platform.on("GET", INSIGHTS, Reply(body=page([]), delay=2.0))
    async with platform_api(replace(settings, connector_timeout_seconds=0.2,
                                    connector_attempts=2), sleep=_recorded) as api:
        with pytest.raises(Transient, match="did not answer in time"):
            await META.pull(api, TOKEN, "act_123", date(2026, 12, 1), date(2026, 12, 1))
    assert len(platform.seen()) == 2


def test_account_ids_take_the_act_prefix():
    assert META.account_id("act_123") == META.account_id("123") == "act_123"
    with pytest.raises(ValueError):
        META.account_id("act_12x")


async def _recorded(_seconds: float) -> None:
    """The Api records its waits; nothing sleeps."""


async def test_the_accounts_a_token_reaches(platform, api):
    platform.on("GET", "/v23.0/me/adaccounts", Reply(body=page([
        {"account_id": "123", "name": "Shop", "currency": "EUR", "id": "act_123"}])))
    [account] = await META.accounts(api, TOKEN)
    assert (account.account_id, account.name, account.currency) == ("act_123", "Shop", "EUR")
    assert platform.seen()[0].query["fields"] == "account_id,name,currency"
