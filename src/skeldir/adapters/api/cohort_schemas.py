"""Shapes of the cohort report, as /openapi.json documents them (definitions: docs/customers.md)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

_UNKNOWN = ("null when an order counted here has no known rate into the reporting currency"
            " (never converted 1:1); `unconverted_orders` says how many")


class CohortPeriod(BaseModel):
    offset: int = Field(description="Periods since the cohort's own (0: the acquiring period)")
    start: date = Field(description="First UTC day of the period")
    customers: int = Field(description="Customers of the cohort with an order in the period")
    orders: int = Field(description="Their orders placed in the period")
    revenue_cents: int | None = Field(
        description="Net revenue (sales less refunds and cancellations) of those orders, in"
        " minor units of the reporting currency; " + _UNKNOWN)
    cumulative_revenue_cents: int | None = Field(
        description="revenue_cents of this and every earlier period of the cohort (the LTV"
        " curve; divide by `customers` of the cohort for LTV per customer); null from the"
        " first unknown period on")
    unconverted_orders: int


class Cohort(BaseModel):
    cohort: date = Field(description="First UTC day of the period the customers were acquired in")
    channel: str | None = Field(
        description="The acquiring channel under `model` (with `by=first_touch_channel`;"
        " `unattributed` when the first order has no credits under the model yet); null"
        " without `by`")
    customers: int = Field(description="Customers whose first order falls in the cohort's"
                           " period and the window")
    repeat_customers: int = Field(description="Of them, those with two orders or more in the"
                                  " window")
    repeat_rate: float = Field(description="repeat_customers / customers, rounded to 4 places")
    revenue_cents: int | None = Field(description="Net revenue of the cohort's orders in the"
                                      " window; " + _UNKNOWN)
    unconverted_orders: int
    periods: list[CohortPeriod] = Field(
        description="Every period from the cohort's to the window's last, none left out")


class NoCustomerPeriod(BaseModel):
    start: date
    orders: int
    revenue_cents: int | None = Field(description=_UNKNOWN)
    unconverted_orders: int


class NoCustomer(BaseModel):
    orders: int = Field(description="Orders in the window whose customer is not known")
    revenue_cents: int | None = Field(description=_UNKNOWN)
    unconverted_orders: int
    periods: list[NoCustomerPeriod]


class CohortPage(BaseModel):
    from_: date = Field(alias="from")
    to: date
    period: str
    by: str | None
    model: str | None = Field(description="The model naming the acquiring channel, with `by`")
    reporting_currency: str
    items: list[Cohort]
    no_customer: NoCustomer = Field(
        description="The window's orders without a customer, counted apart, never in a cohort")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page")
