"""The closed list of reports and how each is refreshed for changed orders or rebuilt."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from skeldir.reporting import allocation_summary, daily_revenue


@dataclass(frozen=True)
class Report:
    name: str
    refresh: Callable[[asyncpg.Connection, uuid.UUID, list[uuid.UUID]], Awaitable[int]]
    rebuild: Callable[[asyncpg.Connection, uuid.UUID], Awaitable[int]]


REPORTS: tuple[Report, ...] = (
    Report(allocation_summary.NAME, allocation_summary.refresh, allocation_summary.rebuild),
    Report(daily_revenue.NAME, daily_revenue.refresh, daily_revenue.rebuild),
)
