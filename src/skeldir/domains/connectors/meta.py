"""Meta Marketing API (Graph API): Insights at ad level, one row per ad and day.

`GET /act_{id}/insights` with `level=ad`, `time_increment=1`, a `time_range` and the fields
below, cursor-paged by `paging.next`; a range longer than `connector_meta_sync_days` runs as an
asynchronous report job (`POST` the same parameters, poll `GET /{report_run_id}` until "Job
Completed" at 100 %, then page `GET /{report_run_id}/insights`). Every figure and id is a string;
spend is a decimal string in the account's currency (`account_currency`).

The token goes in the `access_token` parameter, as Meta documents it (the `paging.next` URLs
echo it): no URL of this module is ever logged or put in an error message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
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

FIELDS = ("account_currency", "campaign_id", "campaign_name", "adset_id", "adset_name", "ad_id",
          "ad_name", "spend", "impressions", "clicks", "date_start", "date_stop")
PAGE_LIMIT = 500
# Error codes (https://developers.facebook.com/docs/graph-api/overview/rate-limiting and the
# Marketing API's): 4 app limit, 17 user limit, 32 page limit, 613 calls limit, 80000-80014 the
# business use cases (ads insights, ads management, ...); subcode 2446079 is the ad account's.
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# 190 is an invalid or expired token; 102 a session error; the subcodes below are the ones Meta
# gives for expired, changed-password, unauthorised-app and checkpoint tokens.
REAUTH_CODES = frozenset({102, 190})
REAUTH_SUBCODES = frozenset({458, 459, 460, 463, 464, 467, 492})
TRANSIENT_CODES = frozenset({1, 2})
# Pause before the next call once any usage figure reaches this percentage.
PAUSE_AT_PERCENT = 90.0
PAUSE_SECONDS = 60.0
USAGE_HEADERS = ("x-business-use-case-usage", "x-app-usage", "x-ad-account-usage",
                 "x-fb-ads-insights-throttle")
_PERCENT_KEYS = ("call_count", "total_cputime", "total_time", "acc_id_util_pct",
                 "app_id_util_pct")
_ACCOUNT = re.compile(r"(?:act_)?([0-9]{1,30})")
JOB_DONE = "Job Completed"
JOB_FAILED = frozenset({"Job Failed", "Job Skipped"})
_MAX_MESSAGE = 300


def _header_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        # Meta's own docs print one of them with single quotes.
        try:
            return json.loads(value.replace("'", '"'))
        except ValueError:
            return None


def _usages(response: httpx.Response) -> list[Mapping[str, Any]]:
    """Every usage object in the response's usage headers (business use case: per business id,
    a list of them)."""
    found: list[Mapping[str, Any]] = []
    for name in USAGE_HEADERS:
        value = response.headers.get(name)
        parsed = _header_json(value) if value else None
        if isinstance(parsed, dict) and name == "x-business-use-case-usage":
            for entries in parsed.values():
                if isinstance(entries, list):
                    found.extend(e for e in entries if isinstance(e, dict))
        elif isinstance(parsed, dict):
            found.append(parsed)
    return found


def usage_pause(response: httpx.Response) -> float:
    """Seconds to wait before the next call, from the usage headers: the time Meta says access
    comes back, else a pause when any figure is at `PAUSE_AT_PERCENT` or more."""
    regain, worst = 0.0, 0.0
    for usage in _usages(response):
        minutes = usage.get("estimated_time_to_regain_access")
        if isinstance(minutes, (int, float)):
            regain = max(regain, float(minutes) * 60)
        for key in _PERCENT_KEYS:
            value = usage.get(key)
            if isinstance(value, (int, float)):
                worst = max(worst, float(value))
    if regain:
        return regain
    return PAUSE_SECONDS if worst >= PAUSE_AT_PERCENT else 0.0


def check(response: httpx.Response) -> Any:
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if response.status_code >= 500:
            raise Transient(f"Meta answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PlatformError(f"Meta answered HTTP {response.status_code}")
        return body
    code, subcode = error.get("code"), error.get("error_subcode")
    message = (f"Meta error {code}" + (f"/{subcode}" if subcode else "") + ": "
               + str(error.get("message", ""))[:_MAX_MESSAGE])
    if code in REAUTH_CODES or subcode in REAUTH_SUBCODES:
        raise NeedsReauth(message)
    if code in THROTTLE_CODES or subcode == 2446079:
        raise Throttled(message, retry_after=usage_pause(response) or None)
    if error.get("is_transient") or code in TRANSIENT_CODES or response.status_code >= 500:
        raise Transient(message)
    raise PlatformError(message)


class MetaConnector:
    platform = "meta"
    required_credentials = ("access_token",)
    optional_credentials = ()

    def account_id(self, given: str) -> str:
        match = _ACCOUNT.fullmatch(given.strip())
        if not match:
            raise ValueError("a Meta ad account id is act_ followed by digits, e.g. act_123")
        return f"act_{match.group(1)}"

    async def accounts(self, api: Api, credentials: Mapping[str, str]) -> list[Account]:
        rows = await self._pages(api, f"{api.settings.connector_meta_base_url}/me/adaccounts", {
            "fields": "account_id,name,currency", "limit": PAGE_LIMIT,
            "access_token": credentials["access_token"]})
        return [Account(f"act_{r['account_id']}", r.get("name", ""), r.get("currency"))
                for r in rows]

    async def pull(self, api: Api, credentials: Mapping[str, str], account_id: str,
                   start: date, end: date) -> list[dict[str, Any]]:
        base, token = api.settings.connector_meta_base_url, credentials["access_token"]
        params = {
            "level": "ad", "time_increment": 1, "fields": ",".join(FIELDS),
            "time_range": json.dumps({"since": start.isoformat(), "until": end.isoformat()}),
            "limit": PAGE_LIMIT, "access_token": token,
        }
        if (end - start).days + 1 > api.settings.connector_meta_sync_days:
            rows = await self._report_job(api, f"{base}/{account_id}/insights", params)
        else:
            rows = await self._pages(api, f"{base}/{account_id}/insights", params)
        if any(not row.get("account_currency") for row in rows):
            currency = await self._currency(api, account_id, token)
            rows = [{"account_currency": currency, **row} if not row.get("account_currency")
                    else row for row in rows]
        return rows

    def to_spend(self, raw: dict[str, Any], account_id: str) -> dict[str, Any]:
        if raw.get("date_stop", raw.get("date_start")) != raw.get("date_start"):
            raise PlatformError("Meta returned a row over several days (time_increment=1?)")
        return {
            "date": raw.get("date_start"), "platform": self.platform, "account_id": account_id,
            "campaign_id": raw.get("campaign_id"), "campaign_name": raw.get("campaign_name"),
            "adset_id": raw.get("adset_id"), "adset_name": raw.get("adset_name"),
            "ad_id": raw.get("ad_id"), "ad_name": raw.get("ad_name"),
            "currency": raw.get("account_currency"),
            # A row without spend had none (Meta omits fields without data).
            "spend": round_decimal(raw.get("spend") or "0", raw.get("account_currency")),
            "impressions": raw.get("impressions"), "clicks": raw.get("clicks"),
        }

    async def _pages(self, api: Api, url: str, params: dict[str, Any]) -> list[dict]:
        """Every row of a cursor-paged edge. `paging.next` (present only when another page
        exists) says whether to go on; the next page is asked of the same URL with
        `after=paging.cursors.after`, rather than by following `next` itself, so that every
        call goes to the configured base URL (a proxy) and the token to no other host."""
        rows: list[dict] = []
        seen: set[str] = set()
        while True:
            body = await api.call("GET", url, params=params, check=check, pace=usage_pause)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise PlatformError("Meta answered without a data list")
            rows.extend(data)
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next"):
                return rows
            if not after or after in seen:
                raise PlatformError("Meta's paging gives no new cursor for its next page")
            seen.add(after)
            params = {**params, "after": after}

    async def _report_job(self, api: Api, url: str, params: dict[str, Any]) -> list[dict]:
        base, token = api.settings.connector_meta_base_url, params["access_token"]
        started = await api.call("POST", url, data=params, check=check, pace=usage_pause)
        run_id = str(started.get("report_run_id", "")) if isinstance(started, dict) else ""
        if not run_id.isdigit():
            raise PlatformError("Meta did not return a report_run_id")
        waited, delay = 0.0, 1.0
        while True:
            run = await api.call("GET", f"{base}/{run_id}", params={"access_token": token},
                                 check=check, pace=usage_pause)
            status = run.get("async_status")
            if status == JOB_DONE and run.get("async_percent_completion") == 100:
                break
            if status in JOB_FAILED:
                raise PlatformError(f"Meta's report job ended as {status!r}")
            if waited >= api.settings.connector_max_wait_seconds:
                raise Transient(f"Meta's report job still {status!r} after {waited:.0f} s")
            await api.wait(delay)
            waited += delay
            delay = min(delay * 2, 30.0)
        return await self._pages(api, f"{base}/{run_id}/insights",
                                 {"access_token": token, "limit": PAGE_LIMIT})

    async def _currency(self, api: Api, account_id: str, token: str) -> str | None:
        body = await api.call("GET", f"{api.settings.connector_meta_base_url}/{account_id}",
                              params={"fields": "currency", "access_token": token},
                              check=check, pace=usage_pause)
        return body.get("currency") if isinstance(body, dict) else None
