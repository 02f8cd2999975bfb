"""The fixed channel order and the default classification of an order's hints."""

from __future__ import annotations

from types import MappingProxyType

from skeldir.domains.attribution.channel_rule_defaults import DEFAULT_RULES
from skeldir.domains.attribution.channel_rules import default_rule_set
from skeldir.domains.ingestion.event import AttributionHints

# The order is part of the contract: it breaks ties when cents are apportioned.
CHANNELS: tuple[str, ...] = tuple(DEFAULT_RULES["channels"])
_CHANNEL_RANK = MappingProxyType({channel: rank for rank, channel in enumerate(CHANNELS)})


def channel_sort_key(channel: str) -> tuple[int, str]:
    """Known channels in their fixed order, then any other channel name alphabetically."""
    return (_CHANNEL_RANK.get(channel, len(CHANNELS)), channel)


def classify(hints: AttributionHints) -> str:
    """The default channel for an order: the default rule set (see channel_rules)."""
    return default_rule_set().classify(hints)
