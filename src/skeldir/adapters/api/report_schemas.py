"""Response shapes of the report endpoints, as /openapi.json documents them.

Amounts are integers in minor units ("cents") of the row's currency, never converted unless the
field says `reporting`.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

_NEXT_CURSOR = Field(description="Pass as `cursor` for the next page; null on the last page")


class ChannelFigures(BaseModel):
    revenue_cents: int = Field(description="Sales credited to the channel")
    refunds_cents: int = Field(
        description="Refunds and cancellations credited, as a positive amount"
    )
    net_cents: int = Field(description="revenue_cents - refunds_cents")
    orders: int = Field(description="Orders whose sales credit the channel")


class ChannelDay(ChannelFigures):
    day: date = Field(description="The order's UTC day")
    currency: str
    channel: str


class ChannelPage(BaseModel):
    model: str
    from_: date = Field(alias="from")
    to: date
    items: list[ChannelDay]
    next_cursor: str | None = _NEXT_CURSOR


class ChannelTable(BaseModel):
    """The unpaginated shape of `/api/attribution/channels`, kept for its clients."""

    model: str
    from_: date = Field(alias="from")
    to: date
    rows: list[ChannelDay]


class ChannelTotal(ChannelFigures):
    channel: str
    currency: str


class ChannelSummary(BaseModel):
    model: str
    from_: date = Field(alias="from")
    to: date
    items: list[ChannelTotal]


class DailyRevenue(BaseModel):
    day: date = Field(description="UTC day of the revenue entry (sale, refund, cancellation)")
    currency: str
    gross_cents: int
    refunds_cents: int = Field(description="Negative: refunds reduce net")
    cancellations_cents: int = Field(description="Negative: cancellations reduce net")
    net_cents: int
    orders: int = Field(description="Orders whose sale falls on this day")
    reporting_currency: str
    gross_reporting_cents: int | None = Field(
        description="null while any entry of the row has no known exchange rate (unknown)"
    )
    refunds_reporting_cents: int | None = Field(description="null: unknown, as above")
    cancellations_reporting_cents: int | None = Field(description="null: unknown, as above")
    net_reporting_cents: int | None = Field(description="null: unknown, as above")
    unconverted_entries: int = Field(
        description="Entries with no known exchange rate: counted in their own currency only"
    )


class DailyRevenuePage(BaseModel):
    from_: date = Field(alias="from")
    to: date
    items: list[DailyRevenue]
    next_cursor: str | None = _NEXT_CURSOR
    days: list[DailyRevenue] = Field(
        deprecated=True, description="The same rows as `items`, for clients written before paging"
    )


class ModelRow(BaseModel):
    channel: str
    currency: str
    net_cents: dict[str, int] = Field(description="Net credited to the channel, per model")
    orders: dict[str, int] = Field(description="Orders whose sales credit the channel, per model")


class ModelTotals(BaseModel):
    currency: str
    revenue_cents: dict[str, int]
    refunds_cents: dict[str, int]
    net_cents: dict[str, int] = Field(
        description="Equal for every model: each model splits each order's whole net revenue"
    )


class ModelComparison(BaseModel):
    from_: date = Field(alias="from")
    to: date
    models: list[str] = Field(description="Models with figures in the window, in a fixed order")
    items: list[ModelRow]
    totals: list[ModelTotals] = Field(description="Per currency, per model")


class PerformanceRow(BaseModel):
    """One channel, platform, campaign, ad set or ad: its spend and what the model credits it.
    Ids a level does not have are null; a row with no platform or campaign names its channel."""

    channel: str | None = Field(
        description="The channel (level channel), or the channel of revenue with no platform "
        "(level platform) or no campaign (lower levels); else null"
    )
    platform: str | None = Field(description="meta, google_ads, tiktok, microsoft_ads, other")
    campaign_id: str | None
    campaign_name: str | None = Field(description="From the spend ledger (latest day)")
    adset_id: str | None
    adset_name: str | None
    ad_id: str | None
    ad_name: str | None
    currency: str = Field(description="The reporting currency, or `currency` when asked")
    spend_cents: int = Field(description="Spend, converted at each day's rate")
    revenue_cents: int = Field(description="Net attributed revenue (sales less refunds)")
    orders: str = Field(description="Attributed orders, fractional credit, six decimals",
                        examples=["1.333334"])
    new_customers: str = Field(
        description="Attributed orders that were a customer's first, fractional like orders"
    )
    new_customer_revenue_cents: int = Field(description="Net attributed revenue of those orders")
    roas: str | None = Field(
        description="revenue_cents / spend_cents to four decimals; null without spend",
        examples=["2.5000"],
    )
    cpa_cents: int | None = Field(description="spend / orders; null without spend or orders")
    cac_cents: int | None = Field(
        description="spend / new_customers; null without spend or new customers"
    )
    rate_missing: bool = Field(
        description="Some spend or revenue had no exchange rate for its day and is left out"
    )


class PerformancePage(BaseModel):
    model: str
    level: str
    from_: date = Field(alias="from")
    to: date
    items: list[PerformanceRow]
    next_cursor: str | None = _NEXT_CURSOR
