"""The closed list of reports: how each is refreshed for changed orders, and rebuilt.

`allocation_summary` is a view over the attribution rows (always current), so it is not here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from skeldir.domains.reporting import campaign_daily, channel_daily, daily_revenue


@dataclass(frozen=True)
class Report:
    name: str
    # None: the recompute keeps the report itself, in the transaction that changes the orders.
    refresh: Callable[[asyncpg.Connection, uuid.UUID, list[uuid.UUID]], Awaitable[int]] | None
    rebuild: Callable[[asyncpg.Connection, uuid.UUID], Awaitable[int]]


REPORTS: tuple[Report, ...] = (
    Report(channel_daily.NAME, None, channel_daily.rebuild),
    Report(campaign_daily.NAME, None, campaign_daily.rebuild),
    Report(daily_revenue.NAME, daily_revenue.refresh, daily_revenue.rebuild),
)

# The reports the chain's refresh step updates.
REFRESHED: tuple[Report, ...] = tuple(report for report in REPORTS if report.refresh is not None)
