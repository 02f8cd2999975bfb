"""Shapes of the spend routes, as /openapi.json documents them.

The upload's row is documented here but validated by `domains.spend.rows`, which reports every
error of every row by its index; a schema check would stop at the first and lose the index.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from skeldir.domains.spend.rows import MAX_ID_LENGTH, MAX_NAME_LENGTH, PLATFORMS

MAX_ROWS = 10_000


class SpendRowDocument(BaseModel):
    """One row of spend: a day's figures of one ad (or ad set, or campaign) on one platform."""

    date: str = Field(description="UTC day, YYYY-MM-DD", examples=["2026-12-01"])
    platform: str = Field(description=f"One of {', '.join(PLATFORMS)}", examples=["meta"])
    account_id: str = Field(max_length=MAX_ID_LENGTH, examples=["act_1"])
    campaign_id: str = Field(max_length=MAX_ID_LENGTH, examples=["c1"])
    campaign_name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    adset_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH,
                                 description="Ad set (ad group); omitted for campaign-level rows")
    adset_name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    ad_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH,
                              description="Needs `adset_id`; omitted for ad set-level rows")
    ad_name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    currency: str = Field(description="ISO 4217 code of the spend", examples=["USD"])
    spend: str | None = Field(
        default=None, description="Decimal string in the currency's units (never a JSON number),"
        " at most its minor-unit digits; or give `spend_micros`", examples=["50.00"])
    spend_micros: int | None = Field(
        default=None, ge=0, description="Spend in millionths (Google Ads' cost_micros),"
        " instead of `spend`")
    impressions: int | None = Field(default=None, ge=0, description="0 when omitted")
    clicks: int | None = Field(default=None, ge=0, description="0 when omitted")


class SpendUpload(BaseModel):
    rows: list[SpendRowDocument] = Field(min_length=1, max_length=MAX_ROWS)


class RowError(BaseModel):
    index: int = Field(description="The row's position in `rows`, from 0")
    errors: list[str]


class SpendAccepted(BaseModel):
    accepted: int = Field(description="Rows stored: new keys and keys whose figures they replace")
    errors: list[RowError] = Field(description="Always empty: a batch with an error stores nothing")


class SpendReportRow(BaseModel):
    day: date
    platform: str
    account_id: str
    campaign_id: str
    campaign_name: str
    adset_id: str = Field(description="'' for a campaign-level row")
    adset_name: str
    ad_id: str = Field(description="'' for a campaign- or ad set-level row")
    ad_name: str
    currency: str
    spend_cents: int = Field(description="Minor units of `currency`")
    impressions: int
    clicks: int
    reporting_currency: str
    spend_reporting_cents: int | None = Field(
        description="Minor units of the reporting currency at the day's rate; null when that"
        " day has no rate (never converted 1:1)")
    rate_missing: bool = Field(description="True when `spend_reporting_cents` is null")


class SpendPage(BaseModel):
    from_: date = Field(alias="from")
    to: date
    items: list[SpendReportRow]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last")


def upload_schema() -> dict[str, Any]:
    """The request body's JSON schema, its row definition inlined (no `$defs` to resolve)."""
    schema = SpendUpload.model_json_schema()
    definitions = schema.pop("$defs")
    schema["properties"]["rows"]["items"] = definitions["SpendRowDocument"]
    return schema
