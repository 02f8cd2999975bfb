"""Response shape of an order's explanation: its revenue, its path, its credits per model."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ChannelCredit(BaseModel):
    channel: str
    cents: int = Field(description="Net credit: the channel's share of sales less refunds")
    gross_cents: int = Field(description="The channel's share of sales alone")
    refunded_cents: int


class ModelCredits(BaseModel):
    model_version: int
    allocated_cents: int = Field(description="Sum of the channels' net credits")
    is_balanced: bool = Field(description="allocated_cents equals the order's net revenue")
    drift_cents: int
    report_refreshed: bool = Field(description="Every report counts the order as it now stands")
    allocations: list[ChannelCredit]
    computed_at: str = Field(description="ISO 8601 time of the stored attribution")


class PathTouchpoint(BaseModel):
    touchpoint_id: str | None = Field(description="Null for the order's own landing page")
    occurred_at: str = Field(description="ISO 8601")
    channel: str
    from_order: bool = Field(description="The order's landing page stands in for a visit")
    credits: dict[str, int] = Field(description="Net credit per model; sums to the order's net")


class OrderExplanation(BaseModel):
    provider: str
    external_order_id: str
    store: str | None = Field(
        description="The source (store) the order came from where the platform numbers orders"
        " per store (WooCommerce); null where order ids span the platform's stores"
    )
    order_received: bool = Field(description="False while only refunds of the order are known")
    currency: str | None
    gross_cents: int
    refunded_cents: int
    cancelled_cents: int
    cancelled_at: str | None
    revenue_cents: int = Field(description="Net revenue: gross less refunds and cancellations")
    reporting_currency: str | None
    fx_rate: str | None = Field(description="Decimal string; null when no rate was known")
    fx_rate_missing: bool
    revenue_reporting_cents: int | None
    presentment_currency: str | None
    presentment_total_cents: int | None
    ordered_at: str | None
    attribution_pending: bool = Field(description="A recompute of this order is due")
    models: dict[str, ModelCredits] = Field(description="Stored credits per model")
    path: list[PathTouchpoint] = Field(
        description="The path as the rules in force read it now, each touchpoint's credit per model"
    )
