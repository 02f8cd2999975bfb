"""The channel rule document's format: its version, the hint fields a rule can test, the limits
on a tenant's document, its error, and how a hint value is compared (docs/channel-rules.md)."""

from __future__ import annotations

import re

FORMAT_VERSION = 1
FIELDS = (
    "click_ids",
    "utm_medium",
    "utm_source",
    "utm_campaign",
    "referring_domain",
    "landing_path",
    "source_name",
)
PLACE_KEYS = ("values", "hosts", "suffixes", "names", "words", "lists")
REQUIRED_CHANNELS = ("direct", "unknown")

MAX_CHANNELS = 50
MAX_LISTS = 50
MAX_RULES = 500
MAX_ITEMS = 500
MAX_GLOBS = 50
MAX_GLOB_LENGTH = 100
MAX_TEXT_LENGTH = 253

_NON_ALNUM = re.compile(r"[^a-z0-9]")


class RuleSetError(ValueError):
    """A rule document that cannot be used; the message starts with the path of the bad item."""


def clean(value: str | None) -> str:
    """A hint value or a rule's value as compared: stripped and lower-case."""
    return value.strip().lower() if value else ""


def medium_key(cleaned: str) -> str:
    """A cleaned utm_medium as compared: its letters and digits alone (paid-social, paidsocial)."""
    return _NON_ALNUM.sub("", cleaned)
