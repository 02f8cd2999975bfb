"""Channel rules as a JSON document: validated strictly, fingerprinted, compiled for speed.

A rule set is an ordered list of rules and a fallback channel; the first rule whose every
condition holds names the channel. A tenant document either extends the default rules (its
own rules are tried first) or replaces them. The format is described in docs/channel-rules.md.
"""

from __future__ import annotations

import contextvars
import copy
import fnmatch
import hashlib
import json
import re
from functools import cache, lru_cache
from operator import attrgetter, call

from skeldir.domains.ingestion.event import AttributionHints

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
# False while reading back a stored, resolved document (see RuleSet.from_resolved).
_SIZE_LIMITS: contextvars.ContextVar[bool] = contextvars.ContextVar("size_limits", default=True)
MAX_LISTS = 50
MAX_RULES = 500
MAX_ITEMS = 500
MAX_GLOBS = 50
MAX_GLOB_LENGTH = 100
MAX_TEXT_LENGTH = 253
_CACHE_SIZE = 1 << 14

_PAID_MEDIUMS = ["cpc", "paid", "paidsearch", "ppc"]

DEFAULT_RULES: dict = {
    "version": FORMAT_VERSION,
    "extends": None,
    # The order is part of the contract: it breaks ties when cents are apportioned.
    "channels": [
        "direct",
        "organic_search",
        "paid_search",
        "organic_social",
        "paid_social",
        "email",
        "referral",
        "affiliate",
        "display",
        "unknown",
    ],
    "lists": {
        "search_engines": {
            "names": ["baidu", "bing", "duckduckgo", "ecosia", "google", "yahoo", "yandex"],
        },
        "social_networks": {
            "names": [
                "facebook",
                "instagram",
                "linkedin",
                "pinterest",
                "reddit",
                "tiktok",
                "twitter",
                "youtube",
            ],
            # Too short to match safely as a label of an arbitrary domain.
            "hosts": ["fb.me", "lnkd.in", "t.co", "x.com", "youtu.be"],
            "words": ["fb", "ig", "tw", "x"],
        },
        "mail_hosts": {
            "hosts": [
                "mail.aol.com",
                "mail.google.com",
                "mail.proton.me",
                "mail.yahoo.com",
                "mail.zoho.com",
                "outlook.live.com",
                "outlook.office.com",
                "outlook.office365.com",
                "webmail.gmx.net",
            ],
        },
    },
    "rules": [
        {"channel": "paid_search", "click_ids": ["dclid", "gbraid", "gclid", "msclkid", "wbraid"]},
        {
            "channel": "paid_social",
            "click_ids": ["fbclid", "li_fat_id", "sccid", "ttclid", "twclid"],
        },
        {
            "channel": "paid_search",
            "utm_medium": _PAID_MEDIUMS,
            "utm_source": {"lists": ["search_engines"]},
        },
        {
            "channel": "paid_social",
            "utm_medium": _PAID_MEDIUMS,
            "utm_source": {"lists": ["social_networks"]},
        },
        {"channel": "paid_search", "utm_medium": _PAID_MEDIUMS},
        {"channel": "email", "utm_medium": ["email", "newsletter"]},
        {"channel": "organic_social", "utm_medium": ["organicsocial", "social"]},
        {"channel": "paid_social", "utm_medium": ["paidsocial"]},
        {"channel": "affiliate", "utm_medium": ["affiliate"]},
        {"channel": "display", "utm_medium": ["banner", "cpm", "display"]},
        {"channel": "referral", "utm_medium": ["referral"]},
        {"channel": "organic_search", "utm_medium": ["organic", "organicsearch"]},
        {"channel": "email", "referring_domain": {"lists": ["mail_hosts"]}},
        {"channel": "organic_search", "referring_domain": {"lists": ["search_engines"]}},
        {"channel": "organic_social", "referring_domain": {"lists": ["social_networks"]}},
        {"channel": "referral", "present": ["referring_domain"]},
        {"channel": "email", "utm_source": {"lists": ["mail_hosts"]}},
        {"channel": "organic_search", "utm_source": {"lists": ["search_engines"]}},
        {"channel": "organic_social", "utm_source": {"lists": ["social_networks"]}},
        {"channel": "referral", "present": ["utm_source"]},
        {"channel": "direct", "source_name": ["web"], "present": ["landing_path"]},
        {"channel": "direct", "absent": ["source_name"], "present": ["landing_path"]},
    ],
    "fallback": "unknown",
}

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_HOST = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_WORD = re.compile(r"[a-z0-9]{1,63}")
_CLICK_ID = re.compile(r"[a-z0-9_.-]{1,64}")
_NON_ALNUM = re.compile(r"[^a-z0-9]")
_WORD_SEPARATORS = re.compile(r"[^a-z0-9]+")
_URL_TAIL = re.compile(r"[/?#]")


class RuleSetError(ValueError):
    """A rule document that cannot be used; the message starts with the path of the bad item."""


class RuleSet:
    """A resolved, compiled rule set. Build one with `RuleSet.from_document`."""

    __slots__ = (
        "_decide",
        "_document",
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
        self._rules, self._values, self._functions, self._decide = _compile(resolved)

    @classmethod
    def from_document(cls, document: dict) -> RuleSet:
        return cls(_resolve(document))

    @classmethod
    def from_resolved(cls, document: dict) -> RuleSet:
        """A rule set stored as `to_document()` gave it. The size limits bound what a tenant
        writes; the resolved form spells out the defaults too and may exceed them."""
        token = _SIZE_LIMITS.set(False)
        try:
            return cls(_resolve(document))
        finally:
            _SIZE_LIMITS.reset(token)

    def to_document(self) -> dict:
        """The resolved, self-contained document (`extends` null) in canonical form."""
        return copy.deepcopy(self._document)

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the resolved rules: equal iff they classify alike."""
        return self._fingerprint

    def classify(self, hints: AttributionHints) -> str:
        return self._decide(*map(call, self._functions, self._values(hints)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleSet) and other._fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __repr__(self) -> str:
        return f"RuleSet(rules={len(self._rules)}, fingerprint={self._fingerprint[:12]})"


@cache
def default_rule_set() -> RuleSet:
    return RuleSet.from_document(DEFAULT_RULES)


def _canonical_json(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _clean(value: str | None) -> str:
    return value.strip().lower() if value else ""


# ---- validation: the input document into its canonical, resolved form ----


def _resolve(document: object) -> dict:
    root = _mapping(
        document, "document", ("version", "extends"), ("channels", "lists", "rules", "fallback")
    )
    if type(root["version"]) is not int or root["version"] != FORMAT_VERSION:
        raise RuleSetError(f"version: must be {FORMAT_VERSION}")
    if root["extends"] == "default":
        base = default_rule_set().to_document()
    elif root["extends"] is None:
        if "channels" not in root:
            raise RuleSetError("channels: required when extends is null")
        base = {"channels": [], "lists": {}, "rules": [], "fallback": "unknown"}
    else:
        raise RuleSetError('extends: must be "default" or null')

    channels = list(base["channels"])
    for index, name in enumerate(_array(root.get("channels", []), "channels", MAX_CHANNELS)):
        path = f"channels[{index}]"
        _check_name(name, path)
        if name in channels:
            where = "a default channel" if name in base["channels"] else "declared twice"
            raise RuleSetError(f"{path}: {name!r} is {where}")
        channels.append(name)
    for name in REQUIRED_CHANNELS:
        if name not in channels:
            raise RuleSetError(f"channels: must declare {name!r} (attribution falls back to it)")

    lists = dict(base["lists"])
    extra_lists = _mapping(root.get("lists", {}), "lists", (), None)
    if len(extra_lists) > MAX_LISTS and _SIZE_LIMITS.get():
        raise RuleSetError(f"lists: at most {MAX_LISTS} lists")
    for name, spec in extra_lists.items():
        _check_name(name, f"lists.{name}")
        if name in lists:
            raise RuleSetError(f"lists.{name}: already a default list")
        lists[name] = _place(spec, f"lists.{name}", None)

    rules = [
        _rule(rule, f"rules[{index}]", channels, lists)
        for index, rule in enumerate(_array(root.get("rules", []), "rules", MAX_RULES))
    ]
    fallback = root.get("fallback", base["fallback"])
    _check_channel(fallback, "fallback", channels)
    return {
        "version": FORMAT_VERSION,
        "extends": None,
        "channels": channels,
        "lists": lists,
        "rules": rules + base["rules"],
        "fallback": fallback,
    }


def _rule(value: object, path: str, channels: list[str], lists: dict) -> dict:
    rule = _mapping(value, path, ("channel",), (*FIELDS, "present", "absent", "description"))
    _check_channel(rule["channel"], f"{path}.channel", channels)
    canonical = {"channel": rule["channel"]}
    if "description" in rule:
        canonical["description"] = _text(rule["description"], f"{path}.description")
    for field in FIELDS:
        if field in rule:
            canonical[field] = _CONDITIONS[field](rule[field], f"{path}.{field}", lists)
    for key in ("present", "absent"):
        if key in rule:
            canonical[key] = _strings(rule[key], f"{path}.{key}", _field_name)
    if len(canonical.keys() - {"channel", "description"}) == 0:
        raise RuleSetError(
            f"{path}: needs at least one condition ({', '.join(FIELDS)}, "
            "present, absent); the fallback covers everything else"
        )
    both = set(canonical.get("present", ())) & set(canonical.get("absent", ()))
    if both:
        raise RuleSetError(f"{path}: {min(both)!r} cannot be both present and absent")
    return canonical


def _place(value: object, path: str, lists: dict | None) -> dict:
    allowed = PLACE_KEYS if lists is not None else PLACE_KEYS[:-1]
    spec = _mapping(value, path, (), allowed)
    if not spec:
        raise RuleSetError(f"{path}: needs at least one of {', '.join(allowed)}")
    canonical = {}
    for key in allowed:
        if key == "lists" and key in spec:
            canonical[key] = _strings(spec[key], f"{path}.lists", _list_name(lists))
        elif key in spec:
            canonical[key] = _strings(spec[key], f"{path}.{key}", _PLACE_ITEMS[key])
    return canonical


def _mapping(value: object, path: str, required: tuple, optional: tuple | None) -> dict:
    if not isinstance(value, dict):
        raise RuleSetError(f"{path}: must be an object, not {_json_type(value)}")
    for key in required:
        if key not in value:
            raise RuleSetError(f"{path}: missing key {key!r}")
    if optional is not None:
        unknown = sorted(set(value) - set(required) - set(optional))
        if unknown:
            allowed = ", ".join((*required, *optional))
            raise RuleSetError(f"{path}: unknown key {unknown[0]!r} (allowed: {allowed})")
    return value


def _array(value: object, path: str, limit: int) -> list:
    if not isinstance(value, list):
        raise RuleSetError(f"{path}: must be an array, not {_json_type(value)}")
    if len(value) > limit and _SIZE_LIMITS.get():
        raise RuleSetError(f"{path}: at most {limit} items, got {len(value)}")
    return value


def _strings(value: object, path: str, canonical_item, limit: int = MAX_ITEMS) -> list[str]:
    items = _array(value, path, limit)
    if not items:
        raise RuleSetError(f"{path}: must not be empty")
    return sorted(
        {
            canonical_item(_text(item, f"{path}[{i}]"), f"{path}[{i}]")
            for i, item in enumerate(items)
        }
    )


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise RuleSetError(f"{path}: must be a string, not {_json_type(value)}")
    if len(value) > MAX_TEXT_LENGTH:
        raise RuleSetError(f"{path}: at most {MAX_TEXT_LENGTH} characters")
    return value


def _json_type(value: object) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _check_name(name: object, path: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RuleSetError(
            f"{path}: {name!r} is not a name (lower-case letters, digits and _, "
            "starting with a letter, at most 40)"
        )


def _check_channel(name: object, path: str, channels: list[str]) -> None:
    if not isinstance(name, str):
        raise RuleSetError(f"{path}: must be a string, not {_json_type(name)}")
    if name not in channels:
        raise RuleSetError(f"{path}: unknown channel {name!r} (declare it under channels)")


def _pattern_item(pattern: re.Pattern, what: str):
    def canonical(item: str, path: str) -> str:
        cleaned = _clean(item)
        if not pattern.fullmatch(cleaned):
            raise RuleSetError(f"{path}: {item!r} is not {what}")
        return cleaned

    return canonical


def _suffix(item: str, path: str) -> str:
    cleaned = _clean(item)
    if not cleaned.startswith(".") or not _HOST.fullmatch(cleaned[1:]):
        raise RuleSetError(f"{path}: {item!r} is not a domain suffix such as '.example.com'")
    return cleaned


def _value(item: str, path: str) -> str:
    cleaned = _clean(item)
    if not cleaned:
        raise RuleSetError(f"{path}: must not be blank")
    return cleaned


def _medium(item: str, path: str) -> str:
    key = _NON_ALNUM.sub("", _clean(item))
    if not key:
        raise RuleSetError(f"{path}: {item!r} has no letters or digits")
    return key


def _glob(item: str, path: str) -> str:
    cleaned = _value(item, path)
    if len(cleaned) > MAX_GLOB_LENGTH:
        raise RuleSetError(f"{path}: a pattern has at most {MAX_GLOB_LENGTH} characters")
    return cleaned


def _path_prefix(item: str, path: str) -> str:
    cleaned = _clean(item)
    if not cleaned.startswith("/"):
        raise RuleSetError(f"{path}: {item!r} must start with '/'")
    return cleaned


def _field_name(item: str, path: str) -> str:
    if item not in FIELDS:
        raise RuleSetError(f"{path}: {item!r} is not a field ({', '.join(FIELDS)})")
    return item


def _list_name(lists: dict):
    def canonical(item: str, path: str) -> str:
        if item not in lists:
            known = ", ".join(sorted(lists)) or "none"
            raise RuleSetError(f"{path}: unknown list {item!r} (known: {known})")
        return item

    return canonical


_PLACE_ITEMS = {
    "values": _value,
    "hosts": _pattern_item(_HOST, "a host such as 'blog.example.com'"),
    "suffixes": _suffix,
    "names": _pattern_item(_LABEL, "a domain label such as 'google'"),
    "words": _pattern_item(_WORD, "a word of letters and digits"),
}
_CONDITIONS = {
    "click_ids": lambda v, p, _: _strings(v, p, _pattern_item(_CLICK_ID, "a click id name")),
    "utm_medium": lambda v, p, _: _strings(v, p, _medium),
    "utm_source": _place,
    "utm_campaign": lambda v, p, _: _strings(v, p, _glob, MAX_GLOBS),
    "referring_domain": _place,
    "landing_path": lambda v, p, _: _strings(v, p, _path_prefix),
    "source_name": lambda v, p, _: _strings(v, p, _value),
}


# ---- compilation: conditions become ids; a hint's features are the ids it satisfies ----


def _compile(resolved: dict) -> tuple:
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
        normalise = (lambda s: _NON_ALNUM.sub("", s)) if field == "utm_medium" else str

        @memoise
        def exact_features(raw: str | None) -> frozenset[int]:
            cleaned = _clean(raw)
            return index.get(normalise(cleaned), when_present) if cleaned else when_absent

        return exact_features

    if field in ("utm_source", "referring_domain"):
        place_index = _PlaceIndex(tests, lists, always_host=field == "referring_domain")

        @memoise
        def place_features(raw: str | None) -> frozenset[int]:
            cleaned = _clean(raw)
            return when_present.union(place_index.ids(cleaned)) if cleaned else when_absent

        return place_features

    if field == "utm_campaign":
        patterns = [(i, re.compile("|".join(map(fnmatch.translate, globs)))) for i, globs in tests]
    else:
        patterns = [(i, re.compile("|".join(map(re.escape, prefixes)))) for i, prefixes in tests]

    @memoise
    def pattern_features(raw: str | None) -> frozenset[int]:
        cleaned = _clean(raw)
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
