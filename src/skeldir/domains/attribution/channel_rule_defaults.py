"""The default channel rules: the channels every tenant has and the rules a tenant's own rules
extend (or replace). Written in canonical form: resolving them changes nothing."""

from __future__ import annotations

from skeldir.domains.attribution.channel_rule_format import FORMAT_VERSION

_PAID_MEDIUMS = ["cpc", "paid", "paidsearch", "ppc"]
# The mediums an ad platform's own URL tags carry (compared without punctuation: paid_social).
_AD_MEDIUMS = ["cpc", "cpm", "cpv", "display", "paid", "paidsearch", "paidsocial", "ppc"]

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
    # A touchpoint's ad platform: the first rule that holds names it; none holds, no platform.
    # Click ids are the platform's own evidence; a utm_source counts with a paid medium only,
    # since the same sources tag organic posts.
    "platform_rules": [
        {"platform": "google_ads", "click_ids": ["dclid", "gbraid", "gclid", "wbraid"]},
        {"platform": "microsoft_ads", "click_ids": ["msclkid"]},
        {"platform": "meta", "click_ids": ["fbclid"]},
        {"platform": "tiktok", "click_ids": ["ttclid"]},
        {"platform": "other", "click_ids": ["li_fat_id", "sccid", "twclid"]},
        {
            "platform": "meta",
            "utm_medium": _AD_MEDIUMS,
            "utm_source": {"names": ["facebook", "instagram", "messenger", "meta"],
                           "words": ["fb", "ig"]},
        },
        {
            "platform": "google_ads",
            "utm_medium": _AD_MEDIUMS,
            "utm_source": {"names": ["google", "youtube"]},
        },
        {"platform": "tiktok", "utm_medium": _AD_MEDIUMS, "utm_source": {"names": ["tiktok"]}},
        {
            "platform": "microsoft_ads",
            "utm_medium": _AD_MEDIUMS,
            "utm_source": {"names": ["bing", "microsoft"]},
        },
        {"platform": "other", "utm_medium": _AD_MEDIUMS},
    ],
}
