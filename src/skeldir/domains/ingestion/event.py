"""The typed, PII-free shape every provider payload is parsed into.

There is deliberately no field that could hold a name, an email address, a phone number,
a postal address or an IP address: what cannot be represented cannot be stored or logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class EntryKind(str, enum.Enum):
    SALE = "sale"
    REFUND = "refund"
    CANCELLATION = "cancellation"


@dataclass(frozen=True, slots=True)
class AttributionHints:
    """Marketing signals the order itself carries (landing page, referrer, channel of sale)."""

    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    # The campaign's id (utm_id), and the ad set and ad ids by the URL convention of
    # docs/spend.md: what ties a paid click to the spend of its campaign, ad set and ad.
    utm_id: str | None = None
    skd_adset: str | None = None
    skd_ad: str | None = None
    # (name, value) pairs such as ("gclid", "abc"), sorted by name.
    click_ids: tuple[tuple[str, str], ...] = ()
    landing_path: str | None = None
    referring_domain: str | None = None
    source_name: str | None = None


@dataclass(frozen=True, slots=True)
class RevenueEntry:
    """A signed movement of money on an order: sales positive, refunds negative."""

    external_id: str
    kind: EntryKind
    amount_minor: int
    currency: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class CommerceEvent:
    provider: str
    topic: str
    external_order_id: str
    currency: str
    # Gross order total in minor units of `currency` (the shop currency for Shopify).
    total_minor: int
    ordered_at: datetime
    updated_at: datetime | None = None
    presentment_currency: str | None = None
    presentment_total_minor: int | None = None
    entries: tuple[RevenueEntry, ...] = ()
    hints: AttributionHints = field(default_factory=AttributionHints)
    # False for events about an order that do not describe the order itself (a refund).
    has_order_snapshot: bool = True
    # Set when the order is cancelled: its revenue then nets to zero whatever else arrives.
    cancelled_at: datetime | None = None
    # True where the platform numbers orders per store (WooCommerce: every shop starts at 1):
    # the order's identity then includes the source the event came from.
    order_ids_per_store: bool = False
