"""What of a payload may be kept: attribution signals in, everything personal out.

URLs keep scheme, host, path and only allow-listed query parameters (utm fields and ad click
ids); a query string otherwise carries emails, tokens and whatever a site chose to put there.
Payloads are kept as projections onto the fields a parser reads, never as copies minus a
deny-list, so a field added by the sender later is dropped by default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeAlias
from urllib.parse import SplitResult, parse_qsl, quote_plus, urlencode, urlsplit

from skeldir.domains.ingestion.event import AttributionHints

UTM_KEYS: tuple[str, ...] = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# The campaign, ad set (ad group) and ad ids of a paid click in a landing URL, by the convention
# of docs/spend.md (UTM has no parameter for the last two). Kept as text, like the utm fields.
CAMPAIGN_KEYS: tuple[str, ...] = ("utm_id", "skd_adset", "skd_ad")
TEXT_KEYS: tuple[str, ...] = UTM_KEYS + CAMPAIGN_KEYS
CLICK_ID_KEYS: tuple[str, ...] = (
    "dclid",
    "epik",
    "fbclid",
    "gbraid",
    "gclid",
    "irclickid",
    "li_fat_id",
    "msclkid",
    "rdt_cid",
    "ScCid",
    "ttclid",
    "twclid",
    "wbraid",
    "yclid",
)
ATTRIBUTION_QUERY_KEYS: frozenset[str] = frozenset(TEXT_KEYS + CLICK_ID_KEYS)

MAX_TEXT_LENGTH = 512
MAX_CLICK_ID_LENGTH = 256

# Senders vary the case of parameter names (GCLID, Utm_Source); the canonical spelling is kept.
_CANONICAL_KEYS = {key.lower(): key for key in ATTRIBUTION_QUERY_KEYS}
_HOST = re.compile(r"[a-z0-9.\-_:]+")
_SCRUBBABLE_SCHEMES = frozenset({"", "http", "https"})
# What urlsplit strips from the start of a URL (C0 controls and space) and what str.strip()
# strips (Unicode white space, all of it in the BMP): a URL's edges lose both, in any order.
_EDGE_CHARACTERS = "".join(ch for ch in map(chr, range(0x10000)) if ch <= " " or ch.isspace())
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")

UtmFields: TypeAlias = dict[str, str]
ClickIds: TypeAlias = tuple[tuple[str, str], ...]


def storable_text(text: str) -> str:
    """`text` with each NUL as U+FFFD. PostgreSQL's text and jsonb cannot hold U+0000; a
    replacement rather than a deletion keeps an invalid value ("paid\\0") from turning valid."""
    return text.replace("\x00", "\ufffd")


def landing_hints(url: str | None) -> tuple[str | None, UtmFields, ClickIds]:
    """(path without query, allow-listed utm fields, sorted (click id name, value) pairs)."""
    reduced = _reduced(url)
    if reduced is None:
        return None, {}, ()
    _, path, utm, click_ids = reduced
    return path, utm, click_ids


def referring_domain(url: str | None) -> str | None:
    """Lower-case host of `url`, without userinfo, port or path; None when there is none.

    An IPv6 host keeps its brackets, so that the result read again is the same host.
    """
    text = _trimmed(url)
    if not text:
        return None
    if "://" not in text and not text.startswith(("/", "?", "#")):
        # Referrers sometimes arrive without a scheme ("www.google.com/search").
        text = "//" + text
    parts = _split(text)
    if parts is None:
        return None
    return _host(parts)


def scrub_url(url: str | None) -> str | None:
    """`url` reduced to scheme, host and path plus only allow-listed query parameters.

    Relative URLs stay relative, and so does a URL whose host cannot be read. Schemes other
    than http(s) are dropped whole, since a data: or javascript: URL is all payload. Scrubbing
    a scrubbed URL changes nothing, and it gives the same landing_hints as the original.
    """
    reduced = _reduced(url)
    if reduced is None:
        return None
    origin, path, utm, click_ids = reduced
    query = urlencode([*utm.items(), *click_ids])
    return f"{origin}{path}" + (f"?{query}" if query else "")


def _reduced(url: str | None) -> tuple[str, str, UtmFields, ClickIds] | None:
    """(origin, path, utm fields, click ids) as scrub_url writes them, or None for a URL not
    worth keeping. Each part is one that reads back as itself from the written URL."""
    parts = _split(url)
    if parts is None or parts.scheme not in _SCRUBBABLE_SCHEMES:
        return None
    host = _host(parts) if parts.netloc else None
    if host is None:
        origin = ""
    else:
        origin = f"{parts.scheme}://{host}" if parts.scheme else f"//{host}"
    path = _trimmed(parts.path[:MAX_TEXT_LENGTH]) or "/"
    if not origin:
        # On its own, a path "//x" would read as a host and "javascript:x" as a scheme.
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if _SCHEME_PREFIX.match(path):
            return None
    utm, click_ids = _attribution_params(parts.query)
    return origin, path, utm, click_ids


def _trimmed(text: str | None) -> str:
    """`text` without the blanks and control characters that surround it ("" for non-text)."""
    return text.strip(_EDGE_CHARACTERS) if isinstance(text, str) else ""


def _split(url: str | None) -> SplitResult | None:
    text = storable_text(_trimmed(url))
    if not text:
        return None
    try:
        return urlsplit(text)
    except ValueError:
        return None


def _host(parts: SplitResult) -> str | None:
    try:
        host = parts.hostname
    except ValueError:
        return None
    if not host or len(host) > 253 or not _HOST.fullmatch(host):
        return None
    # Only a bracketed host has a ':' in it (an IPv6 address); it needs its brackets back.
    return f"[{host}]" if ":" in host else host


def _attribution_params(query: str) -> tuple[UtmFields, ClickIds]:
    """The first non-empty value of each allow-listed parameter; nothing else."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=False, errors="replace"):
        key = _CANONICAL_KEYS.get(name.lower())
        if key is None or key in found or not value:
            continue
        limit = MAX_TEXT_LENGTH if key in TEXT_KEYS else MAX_CLICK_ID_LENGTH
        found[key] = storable_text(value[:limit])
    utm = {key: found[key] for key in TEXT_KEYS if key in found}
    click_ids = tuple(sorted((key, value) for key, value in found.items() if key not in TEXT_KEYS))
    return utm, click_ids


def attribution_hints(
    *,
    landing_url: str | None = None,
    referrer: str | None = None,
    source_name: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> AttributionHints:
    """Hints from a landing URL and referrer, overridden by explicit utm/click-id `fields`.

    `fields` is any sender's key-value bag (Stripe metadata, WooCommerce meta, a generic JSON
    object): only allow-listed keys with non-empty string values are read.
    """
    landing_path, utm, click_ids = landing_hints(landing_url)
    if fields:
        explicit, explicit_clicks = _attribution_params(
            "&".join(
                f"{quote_plus(str(k))}={quote_plus(v)}"
                for k, v in fields.items()
                if isinstance(k, str) and isinstance(v, str) and v
            )
        )
        utm = {**utm, **explicit}
        clicks = dict(click_ids)
        clicks.update(explicit_clicks)
        click_ids = tuple(sorted(clicks.items()))
    return AttributionHints(
        **utm,
        click_ids=click_ids,
        landing_path=landing_path,
        referring_domain=referring_domain(referrer),
        source_name=(
            storable_text(source_name[:MAX_TEXT_LENGTH]) if isinstance(source_name, str) else None
        ),
    )


def attribution_fields(fields: Any) -> dict[str, str]:
    """What `attribution_hints(fields=...)` reads of a sender's key-value bag, for keeping:
    the text of its utm and click-id keys, in any case, bounded. The rest of such a bag is
    where merchants put emails and names.
    """
    if not isinstance(fields, Mapping):
        return {}
    return {
        key: storable_text(value[:MAX_TEXT_LENGTH])
        for key, value in fields.items()
        if isinstance(key, str) and key.lower() in _CANONICAL_KEYS and isinstance(value, str)
    }


Spec: TypeAlias = Mapping[str, "SpecRule"]
# True keeps a scalar leaf; a mapping projects a nested object; [mapping] projects each
# object of a list; a callable replaces the value by its result (e.g. scrub_url).
SpecRule: TypeAlias = "bool | Spec | list[Spec] | Callable[[Any], Any]"

_DROPPED = object()


def project(payload: Mapping[str, Any], spec: Spec) -> dict[str, Any]:
    """The part of `payload` named by `spec`, with bounded, JSON-safe scalar leaves.

    Fields absent from the payload stay absent; a value whose shape does not fit its rule
    (an object where a scalar was named, a scalar where an object was named) is dropped.
    """
    projected: dict[str, Any] = {}
    for key, rule in spec.items():
        if key not in payload:
            continue
        value = _project_value(payload[key], rule)
        if value is not _DROPPED:
            projected[key] = value
    return projected


def _project_value(value: Any, rule: Any) -> Any:
    if rule is True:
        return _leaf(value)
    if callable(rule):
        return rule(value)
    if isinstance(rule, Mapping):
        return project(value, rule) if isinstance(value, Mapping) else _DROPPED
    if isinstance(rule, list) and len(rule) == 1:
        if not isinstance(value, list):
            return _DROPPED
        return [project(item, rule[0]) for item in value if isinstance(item, Mapping)]
    raise TypeError(f"invalid projection rule: {rule!r}")


def _leaf(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # Beyond 64 bits a JSON integer is not portable; keep its text instead.
        return value if -(2**63) <= value < 2**63 else str(value)[:MAX_TEXT_LENGTH]
    if isinstance(value, str):
        return storable_text(value[:MAX_TEXT_LENGTH])
    if isinstance(value, Decimal):
        if value.is_finite() and -40 <= value.adjusted() <= 40:
            return format(value, "f")[:MAX_TEXT_LENGTH]
        return str(value)[:MAX_TEXT_LENGTH]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return _DROPPED
