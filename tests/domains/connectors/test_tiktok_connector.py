"""The TikTok connector against a local server answering in the Business API's shapes: the
integrated report request, page_info paging, 30-day windows, 19-digit ids as JSON numbers,
errors with HTTP 200 and a code (rate limit, revoked token). Real bodies where they exist."""

from __future__ import annotations

import json
from datetime import date

import pytest

from ads_platform_server import Reply, ads_fixture
from skeldir.domains.connectors.platform import NeedsReauth, PlatformError, Throttled
from skeldir.domains.connectors.pulls import fetch_rows
from skeldir.domains.connectors.tiktok import TikTokConnector

pytestmark = pytest.mark.anyio

TIKTOK = TikTokConnector()
TOKEN = {"access_token": "tiktok-secret-token"}
REPORT = "/open_api/v1.3/report/integrated/get/"
ADVERTISER = "7057883608681349122"
# Above 2^53: a float would turn it into 1714125042508817408 or similar.
BIG_AD = 1714125042508817233


def tiktok_row(day: str, ad, spend: str, **metrics) -> dict:
    return {"dimensions": {"ad_id": ad, "stat_time_day": f"{day} 00:00:00"},
            "metrics": {"spend": spend, "impressions": "2000", "clicks": "20", "currency": "USD",
                        "campaign_id": 1714125042508817, "campaign_name": "Website Traffic",
                        "adgroup_id": "1714125042508818", "adgroup_name": "Ad Group",
                        "ad_name": "Ad", **metrics}}


def envelope(rows: list[dict], page: int = 1, total_page: int = 1) -> bytes:
    body = {"code": 0, "message": "OK", "request_id": "2026120105220734B21754851AFCEF9AC9",
            "data": {"list": rows, "page_info": {"page": page, "page_size": 1000,
                                                 "total_number": len(rows),
                                                 "total_page": total_page}}}
    # Serialised by hand so ids stay JSON numbers of every digit.
    return json.dumps(body).encode()


async def test_the_report_request_asks_for_ads_by_day_with_the_token_header(platform, api):
    platform.on("GET", REPORT, Reply(body=envelope([tiktok_row("2026-12-01", BIG_AD, "20.00")])))
    rows = await fetch_rows(api, TIKTOK, TOKEN, ADVERTISER, date(2026, 12, 1), date(2026, 12, 2))
    [seen] = platform.seen()
    assert seen.headers["access-token"] == "tiktok-secret-token"
    assert "tiktok-secret-token" not in json.dumps(seen.query)
    assert seen.query["advertiser_id"] == ADVERTISER
    assert seen.query["report_type"] == "BASIC" and seen.query["data_level"] == "AUCTION_AD"
    assert json.loads(seen.query["dimensions"]) == ["ad_id", "stat_time_day"]
    assert {"spend", "impressions", "clicks", "campaign_id", "campaign_name", "adgroup_id",
            "adgroup_name", "ad_name"} <= set(json.loads(seen.query["metrics"]))
    assert (seen.query["start_date"], seen.query["end_date"]) == ("2026-12-01", "2026-12-02")
    assert seen.query["page"] == "1" and seen.query["page_size"] == "1000"
    [row] = rows
    assert (row.ad_id, row.campaign_id, row.adset_id) == (
        str(BIG_AD), "1714125042508817", "1714125042508818")
    assert (row.day, row.spend_minor, row.currency) == (date(2026, 12, 1), 2000, "USD")


async def test_the_real_report_body_keeps_its_19_digit_ids_exact(platform, api):
    platform.on("GET", REPORT, Reply(body=ads_fixture(
        "tiktok", "report_integrated_level_advertiser_daily_v1.2__talentbz_marketing.json")))
    raw = await TIKTOK.pull(api, TOKEN, ADVERTISER, date(2022, 12, 1), date(2022, 12, 16))
    assert [(r["dimensions"]["advertiser_id"], r["dimensions"]["stat_time_day"],
             r["metrics"]["spend"]) for r in raw] == [
        (7057883608681349122, "2022-12-13 00:00:00", "161.45"),
        (7057883608681349122, "2022-12-08 00:00:00", "80.0")]
    assert str(raw[0]["dimensions"]["advertiser_id"]) == ADVERTISER


async def test_pages_are_read_up_to_total_page(platform, api):
    platform.on("GET", REPORT,
                Reply(body=envelope([tiktok_row("2026-12-01", 1, "1.00")], 1, 2)),
                Reply(body=envelope([tiktok_row("2026-12-01", 2, "2.00")], 2, 2)))
    rows = await fetch_rows(api, TIKTOK, TOKEN, ADVERTISER, date(2026, 12, 1), date(2026, 12, 1))
    assert [r.ad_id for r in rows] == ["1", "2"]
    assert [s.query["page"] for s in platform.seen()] == ["1", "2"]


async def test_a_range_over_30_days_is_asked_in_30_day_windows(platform, api):
    platform.on("GET", REPORT, Reply(body=envelope([])))
    await TIKTOK.pull(api, TOKEN, ADVERTISER, date(2026, 10, 1), date(2026, 11, 30))
    assert [(s.query["start_date"], s.query["end_date"]) for s in platform.seen()] == [
        ("2026-10-01", "2026-10-30"), ("2026-10-31", "2026-11-29"), ("2026-11-30", "2026-11-30")]


async def test_a_missing_currency_is_read_from_the_advertiser(platform, api):
    row = tiktok_row("2026-12-01", 1, "300")
    del row["metrics"]["currency"]
    platform.on("GET", REPORT, Reply(body=envelope([row])))
    platform.on("GET", "/open_api/v1.3/advertiser/info/", Reply(body={
        "code": 0, "message": "OK", "data": {"list": [{"advertiser_id": int(ADVERTISER),
                                                       "currency": "JPY"}]}}))
    [spend] = await fetch_rows(api, TIKTOK, TOKEN, ADVERTISER, date(2026, 12, 1),
                               date(2026, 12, 1))
    assert (spend.currency, spend.spend_minor) == ("JPY", 300)
    info = platform.seen(path="/open_api/v1.3/advertiser/info/")[0]
    assert json.loads(info.query["advertiser_ids"]) == [ADVERTISER]


async def test_the_rate_limit_code_with_http_200_backs_off_and_retries(platform, api):
    limited = {"code": 40100, "message": "Due to too many requests, requests from App"
               " [123] are temporarily restricted.", "request_id": "x", "data": {}}
    platform.on("GET", REPORT, Reply(body=limited), Reply(body=limited),
                Reply(body=envelope([tiktok_row("2026-12-01", 1, "1.00")])))
    assert len(await TIKTOK.pull(api, TOKEN, ADVERTISER, date(2026, 12, 1),
                                 date(2026, 12, 1))) == 1
    assert api.waits == [1.0, 2.0]
    platform.on("GET", REPORT, Reply(body=limited))
    with pytest.raises(Throttled, match="40100"):
        await TIKTOK.pull(api, TOKEN, ADVERTISER, date(2026, 12, 1), date(2026, 12, 1))


async def test_a_revoked_token_with_http_200_needs_reauth(platform, api):
    platform.on("GET", REPORT, Reply(body={"code": 40105, "message": "Access token is incorrect"
                                           " or has been revoked.", "data": {}}))
    with pytest.raises(NeedsReauth, match="40105"):
        await TIKTOK.pull(api, TOKEN, ADVERTISER, date(2026, 12, 1), date(2026, 12, 1))
    assert len(platform.seen()) == 1


async def test_any_other_code_is_an_error_not_data(platform, api):
    platform.on("GET", REPORT, Reply(body={"code": 40002, "message": "Invalid params",
                                           "data": {}}))
    with pytest.raises(PlatformError, match="40002"):
        await TIKTOK.pull(api, TOKEN, ADVERTISER, date(2026, 12, 1), date(2026, 12, 1))


async def test_the_real_advertiser_list_gives_ids_as_exact_text(platform, api):
    platform.on("GET", "/open_api/v1.3/oauth2/advertiser/get/", Reply(body=ads_fixture(
        "tiktok", "oauth2_advertiser_get_v1.2__talentbz_marketing.json")))
    accounts = await TIKTOK.accounts(api, {**TOKEN, "app_id": "1", "secret": "app-secret"})
    assert [(a.account_id, a.name) for a in accounts] == [
        ("7057883608681349122", "Trendsup LTD.0127"), ("7152801527290216450", "Miato1010")]
