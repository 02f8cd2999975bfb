"""Google Ads API over REST: GAQL `search` over `ad_group_ad`, one row per ad and day.

`POST /customers/{id}/googleAds:search` with the query below and, for later pages, the
`nextPageToken` of the previous one (pages are a fixed 10,000 rows). Headers: an OAuth access
token (`Authorization: Bearer`), got from the stored refresh token at the start of each pull,
the `developer-token` and, when the account is reached through a manager account, the
`login-customer-id`. int64 fields (ids, impressions, clicks, cost_micros) are JSON strings;
`metrics.cost_micros` is in millionths of the account's currency (`customer.currency_code`).
A second query of the campaigns' own daily totals adds a campaign-level row for spend no ad
group ad carries (Performance Max and other campaigns without ad group ads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import httpx

from skeldir.base.money import MoneyError
from skeldir.domains.connectors.amounts import round_micros
from skeldir.domains.connectors.api import Api, json_body
from skeldir.domains.connectors.platform import (
    Account,
    NeedsReauth,
    PlatformError,
    Throttled,
    Transient,
)

QUERY = (
    "SELECT customer.currency_code, campaign.id, campaign.name, ad_group.id, ad_group.name,"
    " ad_group_ad.ad.id, ad_group_ad.ad.name, segments.date, metrics.cost_micros,"
    " metrics.impressions, metrics.clicks"
    " FROM ad_group_ad WHERE segments.date BETWEEN '{start}' AND '{end}'"
)
# Campaigns' own totals: spend that no ad group ad carries (Performance Max, and other
# campaign types without ad group ads) is the difference, kept as a campaign-level row.
CAMPAIGN_QUERY = (
    "SELECT customer.currency_code, campaign.id, campaign.name, segments.date,"
    " metrics.cost_micros, metrics.impressions, metrics.clicks"
    " FROM campaign WHERE segments.date BETWEEN '{start}' AND '{end}'"
)
_FIGURES = ("costMicros", "impressions", "clicks")
# Token endpoint errors that only the account's owner can fix by granting access again.
REAUTH_TOKEN_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
TRANSIENT_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})
# The user who granted access lost it to this account: a new grant is the fix.
REAUTH_ERROR_CODES = frozenset({"USER_PERMISSION_DENIED", "OAUTH_TOKEN_EXPIRED",
                                "OAUTH_TOKEN_REVOKED", "OAUTH_TOKEN_INVALID"})
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)s")
_MAX_MESSAGE = 300


def customer_id(given: str) -> str:
    digits = given.strip().replace("-", "")
    if not re.fullmatch(r"[0-9]{1,20}", digits):
        raise ValueError("a Google Ads customer id is 10 digits, with or without hyphens")
    return digits


def _failures(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = []
    for detail in error.get("details") or ():
        if isinstance(detail, dict):
            found.extend(e for e in detail.get("errors") or () if isinstance(e, dict))
    return found


def _retry_delay(failures: list[Mapping[str, Any]]) -> float | None:
    for failure in failures:
        quota = (failure.get("details") or {}).get("quotaErrorDetails") or {}
        match = _DURATION.fullmatch(str(quota.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None


def check(response: httpx.Response) -> Any:
    body = json_body(response)
    if response.status_code < 300:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if response.status_code >= 500:
            raise Transient(f"Google Ads answered HTTP {response.status_code}")
        raise PlatformError(f"Google Ads answered HTTP {response.status_code}")
    status = str(error.get("status", ""))
    failures = _failures(error)
    codes = [f"{k} {v}" for f in failures for k, v in (f.get("errorCode") or {}).items()]
    first = failures[0].get("message") if failures else error.get("message")
    message = (f"Google Ads {status or response.status_code}"
               + (f" ({', '.join(codes)})" if codes else "") + f": {str(first)[:_MAX_MESSAGE]}")
    if status == "RESOURCE_EXHAUSTED" or response.status_code == 429:
        raise Throttled(message, retry_after=_retry_delay(failures))
    if status == "UNAUTHENTICATED" or response.status_code == 401 or any(
            code.split()[-1] in REAUTH_ERROR_CODES for code in codes):
        raise NeedsReauth(message)
    if status in TRANSIENT_STATUSES or response.status_code >= 500:
        raise Transient(message)
    raise PlatformError(message)


def check_token(response: httpx.Response) -> Any:
    body = json_body(response)
    if response.status_code < 300 and isinstance(body, dict) and body.get("access_token"):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    message = f"Google OAuth: {error or f'HTTP {response.status_code}'}"
    if isinstance(body, dict) and body.get("error_description"):
        message += f" ({str(body['error_description'])[:_MAX_MESSAGE]})"
    if error in REAUTH_TOKEN_ERRORS:
        raise NeedsReauth(message)
    if response.status_code == 429:
        raise Throttled(message)
    if response.status_code >= 500:
        raise Transient(message)
    raise PlatformError(message)


class GoogleAdsConnector:
    platform = "google_ads"
    required_credentials = ("developer_token", "client_id", "client_secret", "refresh_token")
    optional_credentials = ("login_customer_id",)

    def account_id(self, given: str) -> str:
        return customer_id(given)

    async def access_token(self, api: Api, credentials: Mapping[str, str]) -> str:
        """A fresh access token from the refresh token (valid about an hour: one per pull)."""
        body = await api.call("POST", api.settings.connector_google_oauth_token_url, data={
            "grant_type": "refresh_token", "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "refresh_token": credentials["refresh_token"]}, check=check_token)
        return body["access_token"]

    def headers(self, credentials: Mapping[str, str], token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}",
                   "developer-token": credentials["developer_token"]}
        if credentials.get("login_customer_id"):
            try:
                headers["login-customer-id"] = customer_id(credentials["login_customer_id"])
            except ValueError:
                raise PlatformError("login_customer_id is not a customer id") from None
        return headers

    async def accounts(self, api: Api, credentials: Mapping[str, str]) -> list[Account]:
        token = await self.access_token(api, credentials)
        body = await api.call(
            "GET", f"{api.settings.connector_google_ads_base_url}/customers:listAccessibleCustomers",
            headers=self.headers(credentials, token), check=check)
        return [Account(name.rsplit("/", 1)[-1], "") for name in body.get("resourceNames", ())]

    async def pull(self, api: Api, credentials: Mapping[str, str], account_id: str,
                   start: date, end: date) -> list[dict[str, Any]]:
        token = await self.access_token(api, credentials)
        dates = {"start": start.isoformat(), "end": end.isoformat()}
        ads = await self._search(api, credentials, token, account_id, QUERY.format(**dates))
        campaigns = await self._search(api, credentials, token, account_id,
                                       CAMPAIGN_QUERY.format(**dates))
        return ads + campaign_remainders(campaigns, ads)

    async def _search(self, api: Api, credentials: Mapping[str, str], token: str,
                      account_id: str, query: str) -> list[dict[str, Any]]:
        """Every row of one GAQL query, page after page (the same query with each token)."""
        url = f"{api.settings.connector_google_ads_base_url}/customers/{account_id}/googleAds:search"
        rows: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            request: dict[str, Any] = {"query": query}
            if page_token:
                request["pageToken"] = page_token
            body = await api.call("POST", url, json=request,
                                  headers=self.headers(credentials, token), check=check)
            if not isinstance(body, dict):
                raise PlatformError("Google Ads answered without a result object")
            # No matching row: `results` is absent, not [].
            rows.extend(body.get("results") or ())
            next_token = body.get("nextPageToken")
            if not next_token:
                return rows
            if next_token == page_token:
                raise PlatformError("Google Ads returned the same page token twice")
            page_token = next_token

    def to_spend(self, raw: dict[str, Any], account_id: str) -> dict[str, Any]:
        currency = (raw.get("customer") or {}).get("currencyCode")
        campaign, group = raw.get("campaign") or {}, raw.get("adGroup") or {}
        ad = (raw.get("adGroupAd") or {}).get("ad") or {}
        metrics = raw.get("metrics") or {}
        micros = metrics.get("costMicros", "0")
        if isinstance(micros, str) and micros.isdigit() and currency:
            try:
                micros = round_micros(int(micros), currency)
            except MoneyError:
                pass  # the row validation names the currency
        return {
            "date": (raw.get("segments") or {}).get("date"), "platform": self.platform,
            "account_id": account_id, "campaign_id": _id(campaign.get("id")),
            "campaign_name": campaign.get("name"), "adset_id": _id(group.get("id")),
            "adset_name": group.get("name"), "ad_id": _id(ad.get("id")),
            "ad_name": ad.get("name"), "currency": currency, "spend_micros": micros,
            "impressions": metrics.get("impressions"), "clicks": metrics.get("clicks"),
        }


def _figures(row: Mapping[str, Any]) -> list[int]:
    metrics = row.get("metrics") or {}
    try:
        return [int(metrics.get(name) or 0) for name in _FIGURES]
    except (TypeError, ValueError):
        raise PlatformError(f"Google Ads returned a figure that is not an integer: {metrics}")


def _campaign_day(row: Mapping[str, Any]) -> tuple:
    return (str((row.get("campaign") or {}).get("id")), (row.get("segments") or {}).get("date"))


def campaign_remainders(campaigns: list[dict[str, Any]],
                        ads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A campaign-level row per campaign and day for what its ad group ads do not account for
    (all of it for a campaign without any), so an account's days add up to its campaigns'."""
    covered: dict[tuple, list[int]] = {}
    for row in ads:
        sums = covered.setdefault(_campaign_day(row), [0, 0, 0])
        for index, value in enumerate(_figures(row)):
            sums[index] += value
    totals: dict[tuple, tuple[dict[str, Any], list[int]]] = {}
    for row in campaigns:
        _, sums = totals.setdefault(_campaign_day(row), (row, [0, 0, 0]))
        for index, value in enumerate(_figures(row)):
            sums[index] += value
    remainders = []
    for key, (row, sums) in totals.items():
        rest = [max(0, total - seen) for total, seen in zip(sums, covered.get(key, [0, 0, 0]))]
        if any(rest):
            remainders.append({
                "customer": row.get("customer"), "campaign": row.get("campaign"),
                "segments": row.get("segments"),
                "metrics": {name: str(value) for name, value in zip(_FIGURES, rest)}})
    return remainders


def _id(value: Any) -> str | None:
    """An id as text: int64 arrives as a string; a number (never a float here) as its digits."""
    return str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
