"""Default marketing channels and the rules that put an order's hints into one of them."""

from __future__ import annotations

import re
from types import MappingProxyType

from skeldir.ingestion.event import AttributionHints

# The order is part of the contract: it breaks ties when cents are apportioned.
CHANNELS: tuple[str, ...] = (
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
)
_CHANNEL_RANK = MappingProxyType({channel: rank for rank, channel in enumerate(CHANNELS)})

PAID_SEARCH_CLICK_IDS = frozenset({"gclid", "msclkid", "dclid", "gbraid", "wbraid"})
PAID_SOCIAL_CLICK_IDS = frozenset({"fbclid", "ttclid", "li_fat_id", "twclid", "sccid"})

# Keys are utm_medium values lower-cased with everything but letters and digits removed.
MEDIUM_CHANNELS = MappingProxyType(
    {
        "cpc": "paid_search",
        "ppc": "paid_search",
        "paid": "paid_search",
        "paidsearch": "paid_search",
        "email": "email",
        "newsletter": "email",
        "social": "organic_social",
        "organicsocial": "organic_social",
        "paidsocial": "paid_social",
        "affiliate": "affiliate",
        "display": "display",
        "banner": "display",
        "cpm": "display",
        "referral": "referral",
        "organic": "organic_search",
        "organicsearch": "organic_search",
    }
)

SEARCH_ENGINES = frozenset({"google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia"})
SOCIAL_NETWORKS = frozenset(
    {"facebook", "instagram", "twitter", "linkedin", "pinterest", "tiktok", "reddit", "youtube"}
)
# Hosts and source names too short to match safely as a label of an arbitrary domain.
SOCIAL_HOSTS = frozenset({"t.co", "x.com", "fb.me", "lnkd.in", "youtu.be"})
SOCIAL_SOURCE_ALIASES = frozenset({"fb", "ig", "x", "tw"})
MAIL_HOSTS = frozenset(
    {
        "mail.google.com",
        "mail.yahoo.com",
        "mail.aol.com",
        "outlook.live.com",
        "outlook.office.com",
        "outlook.office365.com",
        "mail.proton.me",
        "mail.zoho.com",
        "webmail.gmx.net",
    }
)
WEB_SOURCE_NAMES = frozenset({"web"})


def channel_sort_key(channel: str) -> tuple[int, str]:
    """Known channels in their fixed order, then any other channel name alphabetically."""
    return (_CHANNEL_RANK.get(channel, len(CHANNELS)), channel)


def classify(hints: AttributionHints) -> str:
    """The default channel for an order: click ids, then utm_medium, referrer, utm_source."""
    click_id_names = {name.strip().lower() for name, value in hints.click_ids if value}
    if click_id_names & PAID_SEARCH_CLICK_IDS:
        return "paid_search"
    if click_id_names & PAID_SOCIAL_CLICK_IDS:
        return "paid_social"

    source = _clean(hints.utm_source)
    source_channel = _source_channel(source) if source else None
    medium = _clean(hints.utm_medium)
    medium_channel = MEDIUM_CHANNELS.get(re.sub(r"[^a-z0-9]", "", medium)) if medium else None
    if medium_channel == "paid_search" and source_channel == "organic_social":
        return "paid_social"
    if medium_channel:
        return medium_channel

    referrer = _clean(hints.referring_domain)
    if referrer:
        return _domain_channel(referrer)
    if source_channel:
        return source_channel

    source_name = _clean(hints.source_name)
    if (source_name is None or source_name in WEB_SOURCE_NAMES) and _clean(hints.landing_path):
        return "direct"
    return "unknown"


def _clean(value: str | None) -> str | None:
    cleaned = value.strip().lower() if value else ""
    return cleaned or None


def _domain_channel(domain: str) -> str:
    # Tolerates a full URL (scheme, user, port, path) without ever raising on malformed input.
    authority = re.split(r"[/?#]", domain.split("//", 1)[-1], maxsplit=1)[0]
    host = authority.rsplit("@", 1)[-1].split(":")[0].rstrip(".").removeprefix("www.")
    if host in MAIL_HOSTS:
        return "email"
    if host in SOCIAL_HOSTS:
        return "organic_social"
    # Every label but the top-level one, so google.co.uk and search.yahoo.com both match.
    names = set(host.split(".")[:-1])
    if names & SEARCH_ENGINES:
        return "organic_search"
    if names & SOCIAL_NETWORKS:
        return "organic_social"
    return "referral"


def _source_channel(source: str) -> str:
    if "." in source:
        return _domain_channel(source)
    tokens = set(re.split(r"[^a-z0-9]+", source))
    if tokens & SEARCH_ENGINES:
        return "organic_search"
    if tokens & (SOCIAL_NETWORKS | SOCIAL_SOURCE_ALIASES):
        return "organic_social"
    return "referral"
