"""The Google Ads connector against a local server answering in the REST API's shapes: the
OAuth refresh, the headers, the GAQL query, page tokens, micros, RESOURCE_EXHAUSTED with its
retry delay, revoked grants, permission errors and 5xx. Real bodies where they exist."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ads_platform_server import Reply, ads_fixture, replies
from skeldir.base.money import exponent
from skeldir.domains.connectors.amounts import round_micros
from skeldir.domains.connectors.google_ads import GoogleAdsConnector
from skeldir.domains.connectors.platform import NeedsReauth, PlatformError, Throttled
from skeldir.domains.connectors.pulls import fetch_rows

pytestmark = pytest.mark.anyio

GOOGLE = GoogleAdsConnector()
CREDENTIALS = {"developer_token": "dev-token", "client_id": "client.apps.googleusercontent.com",
               "client_secret": "client-secret", "refresh_token": "1//refresh-secret",
               "login_customer_id": "111-222-3333"}
SEARCH = "/v21/customers/1234567890/googleAds:search"


def token_reply() -> Reply:
    body = json.loads(ads_fixture(
        "google_ads", "oauth_token_refresh_response__google_identity_docs.json"))
    return Reply(body={**body, "access_token": "ya29.access-token"})


def ads_row(day: str, ad: str, cost_micros: str, currency: str = "USD", **metrics) -> dict:
    """A GoogleAdsRow as the REST API writes it: lowerCamelCase, int64 as strings."""
    return {
        "customer": {"resourceName": "customers/1234567890", "currencyCode": currency},
        "campaign": {"resourceName": "customers/1234567890/campaigns/111", "id": "111",
                     "name": "Search"},
        "adGroup": {"resourceName": "customers/1234567890/adGroups/222", "id": "222",
                    "name": "Shoes"},
        "adGroupAd": {"resourceName": f"customers/1234567890/adGroupAds/222~{ad}",
                      "ad": {"resourceName": f"customers/1234567890/ads/{ad}", "id": ad}},
        "metrics": {"costMicros": cost_micros, "impressions": "900", "clicks": "30", **metrics},
        "segments": {"date": day},
    }


def serve(platform, *ads: Reply, campaigns: tuple[Reply, ...] = ()) -> None:
    """Answer the ad query with `ads` in turn and the campaign-totals query with `campaigns`
    (by default no row: every campaign's spend is on its ads)."""
    ad_answers = replies(*ads)
    campaign_answers = replies(*(campaigns or (Reply(body=search_page([])),)))
    platform.on("POST", SEARCH, lambda seen: (
        campaign_answers if " FROM campaign " in seen.json["query"] else ad_answers)(seen))


def ad_queries(platform) -> list:
    return [s for s in platform.seen("POST", SEARCH) if "FROM ad_group_ad" in s.json["query"]]


def search_page(rows: list[dict], next_token: str | None = None) -> dict:
    body = {"results": rows, "fieldMask": "customer.currencyCode,campaign.id,metrics.costMicros",
            "queryResourceConsumption": "570"}
    if next_token:
        body["nextPageToken"] = next_token
    return body


async def test_a_pull_refreshes_the_token_and_queries_ad_group_ads_by_day(platform, api):
    platform.on("POST", "/token", token_reply())
    serve(platform, Reply(body=search_page(
        [ads_row("2026-12-01", "333", "12345678"), ads_row("2026-12-02", "333", "5000000")])))
    rows = await fetch_rows(api, GOOGLE, CREDENTIALS, "1234567890", date(2026, 12, 1),
                            date(2026, 12, 2))
    token, search, totals = platform.seen()
    assert " FROM campaign WHERE segments.date BETWEEN '2026-12-01' AND '2026-12-02'" in (
        totals.json["query"])
    assert token.form == {"grant_type": "refresh_token", "refresh_token": "1//refresh-secret",
                          "client_id": "client.apps.googleusercontent.com",
                          "client_secret": "client-secret"}
    assert search.headers["authorization"] == "Bearer ya29.access-token"
    assert search.headers["developer-token"] == "dev-token"
    assert search.headers["login-customer-id"] == "1112223333"
    query = search.json["query"]
    assert "FROM ad_group_ad" in query
    assert "segments.date BETWEEN '2026-12-01' AND '2026-12-02'" in query
    for field in ("metrics.cost_micros", "customer.currency_code", "campaign.id", "ad_group.id",
                  "ad_group_ad.ad.id", "metrics.impressions", "metrics.clicks"):
        assert field in query
    assert "pageSize" not in search.json
    # 12.345678 USD is 1235 cents (half up), 5.000000 exactly 500.
    assert [(r.day, r.campaign_id, r.adset_id, r.ad_id, r.spend_minor, r.clicks)
            for r in rows] == [(date(2026, 12, 1), "111", "222", "333", 1235, 30),
                               (date(2026, 12, 2), "111", "222", "333", 500, 30)]


async def test_page_tokens_are_followed_with_the_same_query(platform, api):
    platform.on("POST", "/token", token_reply())
    platform.on("POST", SEARCH,
                Reply(body=search_page([ads_row("2026-12-01", "1", "1000000")], "CPii5aS87vfF")),
                # The last page of an empty remainder: no results key at all.
                Reply(body={"fieldMask": "campaign.id", "queryResourceConsumption": "12"}))
    rows = await fetch_rows(api, GOOGLE, CREDENTIALS, "1234567890", date(2026, 12, 1),
                            date(2026, 12, 1))
    first, second = ad_queries(platform)
    assert "pageToken" not in first.json and second.json["pageToken"] == "CPii5aS87vfF"
    assert first.json["query"] == second.json["query"]
    assert [r.spend_minor for r in rows] == [100]


async def test_zero_decimal_currencies_round_micros_to_whole_units(platform, api):
    platform.on("POST", "/token", token_reply())
    serve(platform, Reply(body=search_page(
        [ads_row("2026-12-01", "1", "1500000000", "JPY"),
         ads_row("2026-12-01", "2", "499999", "JPY", impressions="0")])))
    rows = await fetch_rows(api, GOOGLE, CREDENTIALS, "1234567890", date(2026, 12, 1),
                            date(2026, 12, 1))
    assert [(r.currency, r.spend_minor) for r in rows] == [("JPY", 1500), ("JPY", 0)]


@given(micros=st.integers(0, 10**15), currency=st.sampled_from(["USD", "JPY", "KWD", "EUR"]))
def test_micros_round_half_up_to_a_whole_minor_unit(micros: int, currency: str) -> None:
    step = 10 ** (6 - exponent(currency))
    rounded = round_micros(micros, currency)
    assert rounded % step == 0
    assert -step / 2 < rounded - micros <= step / 2


async def test_the_real_quota_error_with_a_long_retry_delay_ends_the_pull(platform, api):
    platform.on("POST", "/token", token_reply())
    serve(platform, Reply(429, ads_fixture(
        "google_ads", "error_429_resource_exhausted_retry_delay__pipedream_issue_21554_v21.json")))
    with pytest.raises(Throttled, match="quotaError RESOURCE_EXHAUSTED") as raised:
        await GOOGLE.pull(api, CREDENTIALS, "1234567890", date(2026, 12, 1), date(2026, 12, 1))
    assert raised.value.retry_after == 40591.0
    assert len(platform.seen("POST", SEARCH)) == 1 and api.waits == []


async def test_a_short_retry_delay_is_waited_then_the_call_retried(platform, api):
    quota = json.loads(ads_fixture(
        "google_ads", "error_429_resource_exhausted_retry_delay__pipedream_issue_21554_v21.json"))
    quota["error"]["details"][0]["errors"][0]["details"]["quotaErrorDetails"]["retryDelay"] = "7s"
    platform.on("POST", "/token", token_reply())
    serve(platform, Reply(429, quota),
                Reply(body=search_page([ads_row("2026-12-01", "1", "1000000")])))
    assert len(await GOOGLE.pull(api, CREDENTIALS, "1234567890", date(2026, 12, 1),
                                 date(2026, 12, 1))) == 1
    assert api.waits == [7.0]


async def test_a_revoked_refresh_token_needs_reauth(platform, api):
    platform.on("POST", "/token", Reply(400, ads_fixture(
        "google_ads", "oauth_token_error_invalid_grant__laravel_ads_sdk_issue_17.json")))
    with pytest.raises(NeedsReauth, match="invalid_grant"):
        await GOOGLE.pull(api, CREDENTIALS, "1234567890", date(2026, 12, 1), date(2026, 12, 1))
    assert platform.seen("POST", SEARCH) == []


async def test_an_unauthenticated_answer_needs_reauth(platform, api):
    platform.on("POST", "/token", token_reply())
    serve(platform, Reply(401, ads_fixture(
        "google_ads", "error_401_unauthenticated_not_ads_user__mcp_google_ads_issue_7_v19.json")))
    with pytest.raises(NeedsReauth, match="NOT_ADS_USER"):
        await GOOGLE.pull(api, CREDENTIALS, "1234567890", date(2026, 12, 1), date(2026, 12, 1))


async def test_a_disabled_customer_is_an_error_that_names_the_reason(platform, api):
    platform.on("POST", "/token", token_reply())
    serve(platform, Reply(403, ads_fixture(
        "google_ads",
        "error_403_permission_denied_customer_not_enabled__autoidm_tap_googleads_v8.json")))
    with pytest.raises(PlatformError, match="CUSTOMER_NOT_ENABLED"):
        await GOOGLE.pull(api, CREDENTIALS, "1234567890", date(2026, 12, 1), date(2026, 12, 1))
    assert len(platform.seen("POST", SEARCH)) == 1


async def test_unavailable_is_retried(platform, api):
    platform.on("POST", "/token", token_reply())
    platform.on("POST", SEARCH,
                Reply(503, {"error": {"code": 503, "message": "The service is currently"
                                      " unavailable.", "status": "UNAVAILABLE"}}),
                Reply(body=search_page([])))
    assert await GOOGLE.pull(api, CREDENTIALS, "1234567890", date(2026, 12, 1),
                             date(2026, 12, 1)) == []
    assert api.waits == [1.0]


async def test_accessible_customers_are_the_accounts(platform, api):
    platform.on("POST", "/token", token_reply())
    platform.on("GET", "/v21/customers:listAccessibleCustomers",
                Reply(body={"resourceNames": ["customers/1234567890", "customers/5171368254"]}))
    assert [a.account_id for a in await GOOGLE.accounts(api, CREDENTIALS)] == [
        "1234567890", "5171368254"]


def test_customer_ids_lose_their_hyphens():
    assert GOOGLE.account_id("123-456-7890") == "1234567890"
    with pytest.raises(ValueError):
        GOOGLE.account_id("123-abc")


async def test_spend_no_ad_carries_becomes_a_campaign_level_row(platform, api):
    platform.on("POST", "/token", token_reply())
    pmax = {"customer": {"currencyCode": "USD"}, "segments": {"date": "2026-12-01"},
            "campaign": {"resourceName": "customers/1234567890/campaigns/999", "id": "999",
                         "name": "Performance Max"},
            "metrics": {"costMicros": "40000000", "impressions": "5000", "clicks": "80"}}
    search = {**pmax, "campaign": {"id": "111", "name": "Search"},
              "metrics": {"costMicros": "13000000", "impressions": "1000", "clicks": "31"}}
    serve(platform, Reply(body=search_page([ads_row("2026-12-01", "1", "12345678")])),
          campaigns=(Reply(body=search_page([pmax, search])),))
    rows = await fetch_rows(api, GOOGLE, CREDENTIALS, "1234567890", date(2026, 12, 1),
                            date(2026, 12, 1))
    assert [(r.campaign_id, r.adset_id, r.ad_id, r.spend_minor, r.impressions, r.clicks)
            for r in rows] == [
        ("111", "222", "1", 1235, 900, 30),
        # Performance Max: no ad group ads, all of it at campaign level.
        ("999", "", "", 4000, 5000, 80),
        # Search: 13.00 in all, 12.345678 on its ads: the rest, 0.654322, at campaign level.
        ("111", "", "", 65, 100, 1)]
