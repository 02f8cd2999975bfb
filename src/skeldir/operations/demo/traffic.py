"""Where the demo shop's visitors come from: for each channel, the landing URL and referrer a
browser would report, as the collector sends them."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from urllib.parse import urlencode

from skeldir.operations.demo import campaigns

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
        if rng.random() < 0.15:
            # Bing ads the shop runs without loading their spend: revenue with no spend.
            query = {
                "utm_source": "bing",
                "utm_medium": "cpc",
                "utm_campaign": rng.choice(("brand", "pens_generic")),
                "utm_term": rng.choice(_SEARCH_TERMS),
                "msclkid": _click_id(rng),
            }
            return Landing(channel, f"{page}?{urlencode(query)}", "https://www.bing.com/")
        ad = campaigns.pick_ad(rng, channel)
        return Landing(channel, f"{page}?{campaigns.ad_query(ad, rng, _click_id(rng))}",
                       "https://www.google.com/")
    if channel == "paid_social":
        ad = campaigns.pick_ad(rng, channel)
        query = campaigns.ad_query(ad, rng, _click_id(rng))
        referrer = ("https://www.tiktok.com/" if ad.platform == "tiktok"
                    else f"https://l.{'instagram' if 'instagram' in query else 'facebook'}.com/")
        return Landing(channel, f"{page}?{query}", referrer)
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
