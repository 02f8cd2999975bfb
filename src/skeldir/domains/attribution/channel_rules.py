"""Channel rules as a JSON document: validated strictly, fingerprinted, compiled for speed.

A rule set is an ordered list of rules and a fallback channel; the first rule whose every
condition holds names the channel. A tenant document either extends the default rules (its
own rules are tried first) or replaces them. The format is described in docs/channel-rules.md;
the defaults are in `channel_rule_defaults`, validation in `channel_rule_validation`, matching
in `channel_rule_matching`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from operator import call

from skeldir.domains.attribution.channel_rule_defaults import DEFAULT_RULES
from skeldir.domains.attribution.channel_rule_matching import compile_rules
from skeldir.domains.attribution.channel_rule_validation import resolve, resolve_stored
from skeldir.domains.ingestion.campaign_keys import NO_PLATFORM
from skeldir.domains.ingestion.event import AttributionHints


class RuleSet:
    """A resolved, compiled rule set. Build one with `RuleSet.from_document`."""

    __slots__ = (
        "_decide",
        "_document",
        "_platform",
        "_fingerprint",
        "_functions",
        "_rules",
        "_values",
        "channels",
        "fallback",
    )

    def __init__(self, resolved: dict) -> None:
        self._document = resolved
        self._fingerprint = hashlib.sha256(_canonical_json(resolved)).hexdigest()
        self.channels: tuple[str, ...] = tuple(resolved["channels"])
        self.fallback: str = resolved["fallback"]
        self._rules, self._values, self._functions, self._decide = compile_rules(resolved)
        self._platform = _compiled_platform_rules(resolved)

    @classmethod
    def from_document(cls, document: dict) -> RuleSet:
        return cls(resolve(document))

    @classmethod
    def from_resolved(cls, document: dict) -> RuleSet:
        """A rule set stored as `to_document()` gave it. The size limits bound what a tenant
        writes; the resolved form spells out the defaults too and may exceed them."""
        return cls(resolve_stored(document))

    def to_document(self) -> dict:
        """The resolved, self-contained document (`extends` null) in canonical form."""
        return copy.deepcopy(self._document)

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the resolved rules: equal iff they classify alike."""
        return self._fingerprint

    def classify(self, hints: AttributionHints) -> str:
        return self._decide(*map(call, self._functions, self._values(hints)))

    def platform(self, hints: AttributionHints) -> str:
        """The ad platform the platform rules give, or NO_PLATFORM."""
        _rules, values, functions, decide = self._platform
        return decide(*map(call, functions, values(hints)))

    def channel_and_platform(self, hints: AttributionHints) -> tuple[str, str]:
        return self.classify(hints), self.platform(hints)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleSet) and other._fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        return f"RuleSet(rules={len(self._rules)}, fingerprint={self._fingerprint[:12]})"


@cache
def default_rule_set() -> RuleSet:
    return RuleSet.from_document(DEFAULT_RULES)


def _compiled_platform_rules(resolved: dict) -> tuple:
    """Platform rules are channel rules naming a platform: one format, one matcher."""
    return compile_rules(
        {
            "rules": [
                {**rule, "channel": rule["platform"]} for rule in resolved["platform_rules"]
            ],
            "lists": resolved["lists"],
            "fallback": NO_PLATFORM,
        }
    )


def _canonical_json(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
