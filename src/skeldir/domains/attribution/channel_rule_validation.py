"""A channel rule document validated strictly into its canonical, resolved form: a tenant's own
channels, lists and rules added to the defaults (`extends: "default"`) or standing alone
(`extends: null`), every value cleaned and sorted, and every bad item named by its path."""

from __future__ import annotations

import contextvars
import copy
import re
from functools import cache

from skeldir.domains.attribution.channel_rule_defaults import DEFAULT_RULES
from skeldir.domains.attribution.channel_rule_format import (
    FIELDS,
    FORMAT_VERSION,
    MAX_CHANNELS,
    MAX_GLOB_LENGTH,
    MAX_GLOBS,
    MAX_ITEMS,
    MAX_LISTS,
    MAX_RULES,
    MAX_TEXT_LENGTH,
    PLACE_KEYS,
    REQUIRED_CHANNELS,
    RuleSetError,
    clean,
    medium_key,
)
from skeldir.domains.ingestion.campaign_keys import PLATFORMS

# False while reading back a stored, resolved document (see resolve_stored).
_SIZE_LIMITS: contextvars.ContextVar[bool] = contextvars.ContextVar("size_limits", default=True)

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_HOST = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_WORD = re.compile(r"[a-z0-9]{1,63}")
_CLICK_ID = re.compile(r"[a-z0-9_.-]{1,64}")


def resolve_stored(document: object) -> dict:
    """A document stored as `resolve` gave it. The size limits bound what a tenant writes; the
    resolved form spells out the defaults too and may exceed them."""
    token = _SIZE_LIMITS.set(False)
    try:
        return resolve(document)
    finally:
        _SIZE_LIMITS.reset(token)


@cache
def _resolved_defaults() -> dict:
    return resolve(DEFAULT_RULES)


def resolve(document: object) -> dict:
    """The canonical, self-contained form of a tenant's document (`extends` null)."""
    root = _mapping(
        document,
        "document",
        ("version", "extends"),
        ("channels", "lists", "rules", "fallback", "platform_rules"),
    )
    if type(root["version"]) is not int or root["version"] != FORMAT_VERSION:
        raise RuleSetError(f"version: must be {FORMAT_VERSION}")
    if root["extends"] == "default":
        base = copy.deepcopy(_resolved_defaults())
    elif root["extends"] is None:
        if "channels" not in root:
            raise RuleSetError("channels: required when extends is null")
        base = {"channels": [], "lists": {}, "rules": [], "fallback": "unknown",
                "platform_rules": []}
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
        _rule(rule, f"rules[{index}]", "channel", lambda n, p: _check_channel(n, p, channels), lists)
        for index, rule in enumerate(_array(root.get("rules", []), "rules", MAX_RULES))
    ]
    if "platform_rules" in root:
        platform_rules = [
            _rule(rule, f"platform_rules[{index}]", "platform", _check_platform, lists)
            for index, rule in enumerate(
                _array(root["platform_rules"], "platform_rules", MAX_RULES)
            )
        ] + base["platform_rules"]
    else:
        # A document written before platforms existed (or silent on them) has the defaults'.
        platform_rules = copy.deepcopy(_resolved_defaults()["platform_rules"])
    fallback = root.get("fallback", base["fallback"])
    _check_channel(fallback, "fallback", channels)
    return {
        "version": FORMAT_VERSION,
        "extends": None,
        "channels": channels,
        "lists": lists,
        "rules": rules + base["rules"],
        "fallback": fallback,
        "platform_rules": platform_rules,
    }


def _rule(value: object, path: str, target: str, check_target, lists: dict) -> dict:
    """A rule naming a `target` (its channel, or its platform) when its conditions hold."""
    rule = _mapping(value, path, (target,), (*FIELDS, "present", "absent", "description"))
    check_target(rule[target], f"{path}.{target}")
    canonical = {target: rule[target]}
    if "description" in rule:
        canonical["description"] = _text(rule["description"], f"{path}.description")
    for field in FIELDS:
        if field in rule:
            canonical[field] = _CONDITIONS[field](rule[field], f"{path}.{field}", lists)
    for key in ("present", "absent"):
        if key in rule:
            canonical[key] = _strings(rule[key], f"{path}.{key}", _field_name)
    if len(canonical.keys() - {target, "description"}) == 0:
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


def _check_platform(name: object, path: str) -> None:
    if name not in PLATFORMS:
        raise RuleSetError(f"{path}: must be one of {', '.join(PLATFORMS)}")


def _pattern_item(pattern: re.Pattern, what: str):
    def canonical(item: str, path: str) -> str:
        cleaned = clean(item)
        if not pattern.fullmatch(cleaned):
            raise RuleSetError(f"{path}: {item!r} is not {what}")
        return cleaned

    return canonical


def _suffix(item: str, path: str) -> str:
    cleaned = clean(item)
    if not cleaned.startswith(".") or not _HOST.fullmatch(cleaned[1:]):
        raise RuleSetError(f"{path}: {item!r} is not a domain suffix such as '.example.com'")
    return cleaned


def _value(item: str, path: str) -> str:
    cleaned = clean(item)
    if not cleaned:
        raise RuleSetError(f"{path}: must not be blank")
    return cleaned


def _medium(item: str, path: str) -> str:
    key = medium_key(clean(item))
    if not key:
        raise RuleSetError(f"{path}: {item!r} has no letters or digits")
    return key


def _glob(item: str, path: str) -> str:
    cleaned = _value(item, path)
    if len(cleaned) > MAX_GLOB_LENGTH:
        raise RuleSetError(f"{path}: a pattern has at most {MAX_GLOB_LENGTH} characters")
    return cleaned


def _path_prefix(item: str, path: str) -> str:
    cleaned = clean(item)
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
