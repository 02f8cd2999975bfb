"""A resolved rule set compiled for speed: each distinct condition becomes an id, a hint's
features are the ids its values satisfy (memoised per raw value, since values repeat heavily),
and the first rule whose ids are all among them names the channel."""

from __future__ import annotations

import fnmatch
import json
import re
from functools import lru_cache
from operator import attrgetter

from skeldir.domains.attribution.channel_rule_format import FIELDS, clean, medium_key
from skeldir.domains.ingestion.event import AttributionHints

_CACHE_SIZE = 1 << 14
_WORD_SEPARATORS = re.compile(r"[^a-z0-9]+")
_URL_TAIL = re.compile(r"[/?#]")


def compile_rules(resolved: dict) -> tuple:
    """Each distinct condition gets an id; a rule matches when its ids are a subset of the
    hints' features. Features are memoised per raw value, since values repeat heavily.

    Returns the rules, a getter of the hint values the rules read, one features function
    per value, and the memoised decision over their features."""
    ids: dict[tuple[str, str], int] = {}
    tests: dict[str, list[tuple[int, object]]] = {field: [] for field in FIELDS}
    referenced: set[str] = set()

    def condition_id(kind: str, field: str, condition: object) -> int:
        referenced.add(field)
        key = (kind, field, json.dumps(condition, sort_keys=True))
        if key not in ids:
            ids[key] = len(ids)
            if kind == "match":
                tests[field].append((ids[key], condition))
        return ids[key]

    rules = []
    for rule in resolved["rules"]:
        conditions = {condition_id("match", f, rule[f]) for f in FIELDS if f in rule}
        for kind in ("present", "absent"):
            conditions |= {condition_id(kind, f, None) for f in rule.get(kind, ())}
        rules.append((frozenset(conditions), rule["channel"]))

    used = [field for field in FIELDS if field in referenced]
    functions = tuple(
        _field_features(
            field,
            tests[field],
            ids.get(("present", field, "null")),
            ids.get(("absent", field, "null")),
            resolved["lists"],
        )
        for field in used
    )
    if len(used) > 1:
        values = attrgetter(*used)
    else:

        def values(hints: AttributionHints) -> tuple:
            return tuple(getattr(hints, field) for field in used)

    fallback = resolved["fallback"]

    # Keyed by each field's features, which are few distinct objects with cached hashes.
    @lru_cache(maxsize=_CACHE_SIZE)
    def decide(*parts: frozenset[int]) -> str:
        found = frozenset().union(*parts)
        for conditions, channel in rules:
            if conditions <= found:
                return channel
        return fallback

    return tuple(rules), values, functions, decide


def _field_features(field: str, tests: list, present: int | None, absent: int | None, lists: dict):
    """A function from a raw hint value to the ids of the conditions it satisfies."""
    when_absent = frozenset({absent} - {None})
    when_present = frozenset({present} - {None})
    memoise = lru_cache(maxsize=_CACHE_SIZE)

    if field == "click_ids":
        sets = [(i, frozenset(names)) for i, names in tests]

        @memoise
        def by_names(names: frozenset[str]) -> frozenset[int]:
            return when_present | {i for i, wanted in sets if not names.isdisjoint(wanted)}

        @memoise
        def by_name(raw: str) -> frozenset[int]:
            return by_names(frozenset({raw.strip().lower()}))

        # Click id values are unique per click, so only the names are memoised.
        def click_features(pairs: tuple[tuple[str, str], ...]) -> frozenset[int]:
            if len(pairs) == 1:
                return by_name(pairs[0][0]) if pairs[0][1] else when_absent
            names = frozenset(name.strip().lower() for name, value in pairs if value)
            return by_names(names) if names else when_absent

        return click_features

    if not tests:

        def presence(raw: str | None) -> frozenset[int]:
            return when_present if raw and not raw.isspace() else when_absent

        return presence

    if field in ("utm_medium", "source_name"):
        index: dict[str, frozenset[int]] = {}
        for i, values in tests:
            for value in values:
                index[value] = index.get(value, when_present) | {i}
        normalise = medium_key if field == "utm_medium" else str

        @memoise
        def exact_features(raw: str | None) -> frozenset[int]:
            cleaned = clean(raw)
            return index.get(normalise(cleaned), when_present) if cleaned else when_absent

        return exact_features

    if field in ("utm_source", "referring_domain"):
        place_index = _PlaceIndex(tests, lists, always_host=field == "referring_domain")

        @memoise
        def place_features(raw: str | None) -> frozenset[int]:
            cleaned = clean(raw)
            return when_present.union(place_index.ids(cleaned)) if cleaned else when_absent

        return place_features

    if field == "utm_campaign":
        patterns = [(i, re.compile("|".join(map(fnmatch.translate, globs)))) for i, globs in tests]
    else:
        patterns = [(i, re.compile("|".join(map(re.escape, prefixes)))) for i, prefixes in tests]

    @memoise
    def pattern_features(raw: str | None) -> frozenset[int]:
        cleaned = clean(raw)
        if not cleaned:
            return when_absent
        return when_present | {i for i, pattern in patterns if pattern.match(cleaned)}

    return pattern_features


class _PlaceIndex:
    """Which place conditions a referrer or utm_source satisfies, by dictionary lookups.

    A referrer, or a utm_source with a dot, is read as a host: its labels are all but the
    top-level one, so google.co.uk has the name google. Any other utm_source is read as words.
    """

    def __init__(self, tests: list[tuple[int, dict]], lists: dict, always_host: bool) -> None:
        self.always_host = always_host
        self.values: dict[str, set[int]] = {}
        self.hosts: dict[str, set[int]] = {}
        self.labels: dict[str, set[int]] = {}
        self.words: dict[str, set[int]] = {}
        suffixes: dict[str, set[int]] = {}
        for i, spec in tests:
            for part in (spec, *(lists[name] for name in spec.get("lists", ()))):
                for key, index in (
                    ("values", self.values),
                    ("hosts", self.hosts),
                    ("names", self.labels),
                    ("names", self.words),
                    ("words", self.words),
                    ("suffixes", suffixes),
                ):
                    for item in part.get(key, ()):
                        index.setdefault(item, set()).add(i)
        for suffix, ids in suffixes.items():
            self.hosts.setdefault(suffix[1:], set()).update(ids)
        self.suffixes = sorted(suffixes.items())

    def ids(self, cleaned: str) -> set[int]:
        found = set(self.values.get(cleaned, ()))
        if not self.always_host and "." not in cleaned:
            for word in _WORD_SEPARATORS.split(cleaned):
                found.update(self.words.get(word, ()))
            return found
        # Tolerates a full URL (scheme, user, port, path) without ever raising on malformed input.
        authority = _URL_TAIL.split(cleaned.split("//", 1)[-1], maxsplit=1)[0]
        host = authority.rsplit("@", 1)[-1].split(":")[0].rstrip(".").removeprefix("www.")
        found.update(self.hosts.get(host, ()))
        for suffix, ids in self.suffixes:
            if host.endswith(suffix):
                found.update(ids)
        for label in host.split(".")[:-1]:
            found.update(self.labels.get(label, ()))
        return found
