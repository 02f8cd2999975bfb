"""TikTok API for Business: the integrated report at ad level, one row per ad and day.

`GET /report/integrated/get/` with `report_type=BASIC`, `data_level=AUCTION_AD`, dimensions
`ad_id` and `stat_time_day`, the metrics below, a date range of at most 30 days (longer ranges
are asked in 30-day windows) and `page`/`page_size`, paged until `page_info.total_page`. The
token is the `Access-Token` header. Errors come back with HTTP 200 and a non-zero `code`.
Ids are strings or JSON numbers (19 digits, above 2^53) depending on endpoint and version:
JSON numbers are read as Python integers, exactly, and kept as their digits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import httpx

from skeldir.domains.connectors.amounts import round_decimal
from skeldir.domains.connectors.api import Api, json_body
from skeldir.domains.connectors.platform import (
    Account,
    NeedsReauth,
    PlatformError,
    Throttled,
    Transient,
)

DIMENSIONS = ("ad_id", "stat_time_day")
METRICS = ("spend", "impressions", "clicks", "currency", "campaign_id", "campaign_name",
           "adgroup_id", "adgroup_name", "ad_name")
PAGE_SIZE = 1000
MAX_DAYS = 30
# 40100: requests over the app's limit ("Due to too many requests, ... temporarily
# restricted"); no delay is given, so the call backs off.
THROTTLE_CODES = frozenset({40100})
# 40105: "Access token is incorrect or has been revoked"; 40104: no token was sent.
REAUTH_CODES = frozenset({40104, 40105})
_ADVERTISER = re.compile(r"[0-9]{1,30}")
_MAX_MESSAGE = 300


def check(response: httpx.Response) -> Any:
    body = json_body(response)
    if not isinstance(body, dict) or "code" not in body:
        if response.status_code >= 500:
            raise Transient(f"TikTok answered HTTP {response.status_code}")
        raise PlatformError(f"TikTok answered HTTP {response.status_code} without a code")
    code = body["code"]
    if code == 0 and response.status_code < 300:
        return body.get("data") or {}
    message = f"TikTok error {code}: {str(body.get('message', ''))[:_MAX_MESSAGE]}"
    if code in THROTTLE_CODES:
        raise Throttled(message)
    if code in REAUTH_CODES:
        raise NeedsReauth(message)
    if response.status_code >= 500 or (isinstance(code, int) and 50000 <= code < 60000):
        raise Transient(message)
    raise PlatformError(message)


def _digits(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return str(value)


class TikTokConnector:
    platform = "tiktok"
    required_credentials = ("access_token",)
    # The app's id and secret list the advertisers a token reaches (accounts only).
    optional_credentials = ("app_id", "secret")

    def account_id(self, given: str) -> str:
        if not _ADVERTISER.fullmatch(given.strip()):
            raise ValueError("a TikTok advertiser id is digits")
        return given.strip()

    def _headers(self, credentials: Mapping[str, str]) -> dict[str, str]:
        return {"Access-Token": credentials["access_token"]}

    async def accounts(self, api: Api, credentials: Mapping[str, str]) -> list[Account]:
        if not (credentials.get("app_id") and credentials.get("secret")):
            raise PlatformError("listing advertisers needs the app_id and secret credentials")
        data = await api.call(
            "GET", f"{api.settings.connector_tiktok_base_url}/oauth2/advertiser/get/",
            params={"app_id": credentials["app_id"], "secret": credentials["secret"]},
            headers=self._headers(credentials), check=check)
        return [Account(_digits(a.get("advertiser_id")) or "", a.get("advertiser_name", ""))
                for a in data.get("list") or ()]

    async def pull(self, api: Api, credentials: Mapping[str, str], account_id: str,
                   start: date, end: date) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        window = start
        while window <= end:
            last = min(end, window + timedelta(days=MAX_DAYS - 1))
            rows.extend(await self._window(api, credentials, account_id, window, last))
            window = last + timedelta(days=1)
        if any(not (row.get("metrics") or {}).get("currency") for row in rows):
            currency = await self._currency(api, credentials, account_id)
            for row in rows:
                metrics = row.setdefault("metrics", {})
                metrics["currency"] = metrics.get("currency") or currency
        return rows

    async def _window(self, api: Api, credentials: Mapping[str, str], account_id: str,
                      start: date, end: date) -> list[dict[str, Any]]:
        url = f"{api.settings.connector_tiktok_base_url}/report/integrated/get/"
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            data = await api.call("GET", url, headers=self._headers(credentials), check=check,
                                  params={
                "advertiser_id": account_id, "report_type": "BASIC",
                "data_level": "AUCTION_AD", "dimensions": json.dumps(list(DIMENSIONS)),
                "metrics": json.dumps(list(METRICS)), "start_date": start.isoformat(),
                "end_date": end.isoformat(), "page": page, "page_size": PAGE_SIZE})
            listed = data.get("list")
            if not isinstance(listed, list):
                raise PlatformError("TikTok answered without a data.list")
            rows.extend(listed)
            total_pages = (data.get("page_info") or {}).get("total_page") or 1
            if page >= total_pages or not listed:
                return rows
            page += 1

    async def _currency(self, api: Api, credentials: Mapping[str, str],
                        account_id: str) -> str | None:
        data = await api.call(
            "GET", f"{api.settings.connector_tiktok_base_url}/advertiser/info/",
            params={"advertiser_ids": json.dumps([account_id]),
                    "fields": json.dumps(["advertiser_id", "currency"])},
            headers=self._headers(credentials), check=check)
        listed = data.get("list") or [{}]
        return listed[0].get("currency") if isinstance(listed[0], dict) else None

    def to_spend(self, raw: dict[str, Any], account_id: str) -> dict[str, Any]:
        dimensions, metrics = raw.get("dimensions") or {}, raw.get("metrics") or {}
        day = dimensions.get("stat_time_day")
        return {
            # "2026-12-01 00:00:00": the day in the advertiser's time zone.
            "date": day[:10] if isinstance(day, str) else day,
            "platform": self.platform, "account_id": account_id,
            "campaign_id": _digits(metrics.get("campaign_id")),
            "campaign_name": metrics.get("campaign_name"),
            "adset_id": _digits(metrics.get("adgroup_id")),
            "adset_name": metrics.get("adgroup_name"),
            "ad_id": _digits(dimensions.get("ad_id")), "ad_name": metrics.get("ad_name"),
            "currency": metrics.get("currency"),
            "spend": round_decimal(metrics.get("spend") or "0", metrics.get("currency")),
            "impressions": metrics.get("impressions"), "clicks": metrics.get("clicks"),
        }
