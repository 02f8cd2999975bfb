"""Where the demo shop's visitors come from: for each channel, the landing URL and referrer a
browser would report, as the collector sends them."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from urllib.parse import urlencode

SHOP_URL = "https://demo-shop.example"
PAGES = (
    "/",
    "/products/fountain-pen-matte-black",
    "/products/fountain-pen-demonstrator",
    "/products/ink-blue-black-50ml",
    "/collections/notebooks",
    "/collections/gifts",
    "/blog/how-to-fill-a-fountain-pen",
)
# (channel, share of visits): roughly a small web shop's mix.
CHANNEL_SHARES = (
    ("paid_search", 24),
    ("paid_social", 17),
    ("email", 13),
    ("organic_search", 21),
    ("referral", 9),
    ("direct", 16),
)
CHANNELS = tuple(channel for channel, _ in CHANNEL_SHARES)

_SEARCH_ENGINES = ("https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/")
_REFERRING_SITES = (
    "https://inkjournal.example/reviews/best-fountain-pens",
    "https://stationery-nerds.example/forum/t/first-pen",
    "https://paperlovers.example/gift-guide",
)
_SEARCH_TERMS = ("fountain pen", "fountain pen for beginners", "blue black ink", "dot grid a5")
_CLICK_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


@dataclass(frozen=True, slots=True)
class Landing:
    channel: str
    url: str
    referrer: str | None


def random_channel(rng: random.Random, returning: bool = False) -> str:
    """A visit's channel; a returning visitor more often types the address or opens a mail."""
    weights = [share for _, share in CHANNEL_SHARES]
    if returning:
        weights = [w * (3 if c in ("direct", "email") else 1) for c, w in CHANNEL_SHARES]
    return rng.choices(CHANNELS, weights)[0]


def landing(channel: str, rng: random.Random) -> Landing:
    page = SHOP_URL + rng.choice(PAGES)
    if channel == "paid_search":
        engine = rng.choices(("google", "bing"), (85, 15))[0]
        click_id = "gclid" if engine == "google" else "msclkid"
        query = {
            "utm_source": engine,
            "utm_medium": "cpc",
            "utm_campaign": rng.choice(("brand", "pens_generic", "ink_shopping")),
            "utm_term": rng.choice(_SEARCH_TERMS),
            click_id: _click_id(rng),
        }
        return Landing(channel, f"{page}?{urlencode(query)}", f"https://www.{engine}.com/")
    if channel == "paid_social":
        network = rng.choices(("facebook", "instagram"), (60, 40))[0]
        query = {
            "utm_source": network,
            "utm_medium": "paid_social",
            "utm_campaign": rng.choice(("spring_pens", "retargeting_cart")),
            "fbclid": _click_id(rng),
        }
        return Landing(channel, f"{page}?{urlencode(query)}", f"https://l.{network}.com/")
    if channel == "email":
        query = {
            "utm_source": "newsletter",
            "utm_medium": "email",
            "utm_campaign": rng.choice(("weekly_letter", "restock_alert")),
        }
        return Landing(channel, f"{page}?{urlencode(query)}", None)
    if channel == "organic_search":
        return Landing(channel, page, rng.choice(_SEARCH_ENGINES))
    if channel == "referral":
        return Landing(channel, page, rng.choice(_REFERRING_SITES))
    if channel == "direct":
        return Landing(channel, page, None)
    raise ValueError(f"no landing for channel {channel!r}")


def _click_id(rng: random.Random) -> str:
    return "".join(rng.choices(_CLICK_ID_ALPHABET, k=rng.randint(24, 40)))
