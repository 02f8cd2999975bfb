"""The interface every connector fulfils, and the errors a platform call ends in.

A connector lists the accounts its credentials reach, pulls one account's rows for a day range
at the finest level the platform reports (one row per ad and day), and maps each raw row to a
spend-ledger row (the mapping `domains.spend.rows.validate` accepts). It knows its platform's
endpoints, parameters and error shapes; retries, pacing, storage and scheduling are the
caller's (`api.Api`, `pulls`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from skeldir.domains.connectors.api import Api


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    name: str
    currency: str | None = None


class Connector(Protocol):
    # The spend ledger's platform name (domains.spend.rows.PLATFORMS).
    platform: str
    # Keys the credentials document must hold (secrets and account-wide settings alike).
    required_credentials: tuple[str, ...]
    optional_credentials: tuple[str, ...]

    def account_id(self, given: str) -> str:
        """The account id as stored and sent (act_ prefix, digits without hyphens, ...);
        ValueError when `given` cannot be one."""

    async def accounts(self, api: Api, credentials: Mapping[str, str]) -> list[Account]:
        """The accounts these credentials can read."""

    async def pull(self, api: Api, credentials: Mapping[str, str], account_id: str,
                   start: date, end: date) -> list[dict[str, Any]]:
        """Every raw row of `account_id` from `start` to `end` (inclusive), one per ad and day,
        all pages read."""

    def to_spend(self, raw: dict[str, Any], account_id: str) -> dict[str, Any]:
        """One raw row as a spend-ledger row mapping (validated by the caller)."""


class ConnectorError(Exception):
    """A pull that did not complete; the message is safe to store and show (never a token)."""

    outcome = "error"


class NeedsReauth(ConnectorError):
    """The grant was revoked or expired: only the account's owner can fix it."""

    outcome = "needs_reauth"


class Throttled(ConnectorError):
    """The platform asked to slow down; `retry_after` seconds when it said how long."""

    outcome = "throttled"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Transient(ConnectorError):
    """A timeout, a dropped connection, a 5xx or an error the platform marks as transient."""


class PlatformError(ConnectorError):
    """An answer that retrying will not change (bad request, permission, unexpected shape)."""
