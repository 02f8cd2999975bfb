"""The demo shop's ad accounts: its campaigns, ad sets and ads on Meta, Google Ads and TikTok,
what each ad costs a day, and the ad URL a click on it lands on.

A day's spend follows the same rhythm as the day's visitors (`day_factor`): a weekly pattern
(weekends are quieter), a slow upward trend over the period and some noise, so the dashboard
shows trends and weekly waves rather than one bar. Amounts are integers in minor units.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from skeldir.base.money import format_minor

# The query parameters that carry an ad set's and an ad's id in an ad URL (the campaign's id
# rides in utm_id). One place, so the convention is one edit if it changes.
AD_URL_PARAMS = {"adset": "skd_adset", "ad": "skd_ad"}

# Monday first: a small shop's week, quieter at the weekend.
WEEKDAY_FACTORS = (1.08, 1.05, 1.0, 1.02, 0.96, 0.8, 0.86)
# The last day of the period is this much busier than its first.
TREND = 0.3
NOISE = 0.12


@dataclass(frozen=True, slots=True)
class Ad:
    platform: str
    account_id: str
    # (utm_source, utm_medium) the ad's URL template carries
    source: str
    medium: str
    click_id: str
    campaign_id: str
    campaign_name: str
    adset_id: str
    adset_name: str
    ad_id: str
    ad_name: str
    # Spend on an ordinary weekday at the start of the period, in minor units of USD.
    daily_budget_minor: int

    @property
    def channel(self) -> str:
        return "paid_search" if self.platform == "google_ads" else "paid_social"


def _ads(platform, account_id, source, medium, click_id, campaigns) -> tuple[Ad, ...]:
    return tuple(
        Ad(platform, account_id, source, medium, click_id, campaign_id, campaign_name,
           adset_id, adset_name, ad_id, ad_name, budget)
        for campaign_id, campaign_name, adsets in campaigns
        for adset_id, adset_name, ads in adsets
        for ad_id, ad_name, budget in ads
    )


ADS: tuple[Ad, ...] = (
    *_ads("meta", "act_4410278813", "facebook", "paid_social", "fbclid", (
        ("120210000000001", "Spring pens, prospecting", (
            ("120210000000101", "Lookalike 1% buyers", (
                ("120210000001001", "Matte black, video 15s", 4200),
                ("120210000001002", "Demonstrator, carousel", 2600),
            )),
            ("120210000000102", "Interest: stationery", (
                ("120210000001003", "Nib close-up, reel", 3100),
            )),
        )),
        ("120210000000002", "Retargeting, cart", (
            ("120210000000103", "Cart abandoners 7d", (
                ("120210000001004", "Free shipping reminder", 1900),
                ("120210000001005", "Ink bundle, static", 1200),
            )),
        )),
    )),
    *_ads("google_ads", "123-456-7890", "google", "cpc", "gclid", (
        ("20871000001", "Brand, exact", (
            ("150200000001", "Brand terms", (
                ("690100000001", "Brand RSA", 1500),
            )),
        )),
        ("20871000002", "Pens, generic", (
            ("150200000002", "Fountain pens", (
                ("690100000002", "Pens RSA, price", 3800),
                ("690100000003", "Pens RSA, beginners", 2700),
            )),
            ("150200000003", "Ink", (
                ("690100000004", "Ink RSA", 1400),
            )),
        )),
        ("20871000003", "Shopping, all products", (
            ("150200000004", "All products", (
                ("690100000005", "Product listing", 4600),
            )),
        )),
    )),
    *_ads("tiktok", "7301000000000000001", "tiktok", "paid_social", "ttclid", (
        ("1780000000000000001", "Unboxing creators", (
            ("1780000000000000101", "Creators, 18-34", (
                ("1780000000000001001", "Unboxing, creator A", 2300),
                ("1780000000000001002", "First fill, creator B", 1700),
            )),
        )),
        ("1780000000000000002", "Notebook spark ads", (
            ("1780000000000000102", "Journaling interest", (
                ("1780000000000001003", "Dot grid flip-through", 1300),
            )),
        )),
    )),
)
SPEND_CURRENCY = "USD"


def day_factor(rng: random.Random, day: date, position: float) -> float:
    """How busy `day` is against an ordinary day; `position` runs from 0 (the period's first
    day) to 1 (its last)."""
    return WEEKDAY_FACTORS[day.weekday()] * (1 + TREND * position) * rng.uniform(1 - NOISE,
                                                                                 1 + NOISE)


def spend_rows(rng: random.Random, day: date, factor: float, share: float = 1.0) -> list[dict]:
    """Every ad's row of `day`, in the shape of `POST /api/spend`; `share` of the day has
    passed (the current day's figures so far)."""
    rows = []
    for ad in ADS:
        spend = round(ad.daily_budget_minor * factor * share * rng.uniform(0.8, 1.2))
        # Cost per click: a little under a dollar on social, more on search.
        cpc = rng.uniform(70, 110) if ad.channel == "paid_social" else rng.uniform(110, 190)
        clicks = round(spend / cpc)
        rows.append({
            "date": day.isoformat(), "platform": ad.platform, "account_id": ad.account_id,
            "campaign_id": ad.campaign_id, "campaign_name": ad.campaign_name,
            "adset_id": ad.adset_id, "adset_name": ad.adset_name,
            "ad_id": ad.ad_id, "ad_name": ad.ad_name, "currency": SPEND_CURRENCY,
            "spend": format_minor(spend, SPEND_CURRENCY),
            "impressions": clicks * rng.randint(40, 90), "clicks": clicks,
        })
    return rows


def pick_ad(rng: random.Random, channel: str) -> Ad:
    """An ad of `channel`, in proportion to its budget (the clicks an ad buys)."""
    ads = [ad for ad in ADS if ad.channel == channel]
    return rng.choices(ads, [ad.daily_budget_minor for ad in ads])[0]


def ad_query(ad: Ad, rng: random.Random, click_id: str) -> str:
    """The query string of the ad's URL: UTM tags, the campaign id in utm_id, the ad set and
    ad ids, and the platform's click id, as its URL template fills them in."""
    return urlencode({
        "utm_source": ad.source if ad.platform != "meta"
        else rng.choices(("facebook", "instagram"), (60, 40))[0],
        "utm_medium": ad.medium,
        "utm_campaign": ad.campaign_name,
        "utm_id": ad.campaign_id,
        AD_URL_PARAMS["adset"]: ad.adset_id,
        AD_URL_PARAMS["ad"]: ad.ad_id,
        ad.click_id: click_id,
    })
