"""The ad platforms and how a touchpoint names the campaign, ad set and ad that brought it.

Spend is loaded per platform (`domains/spend`); a touchpoint's platform comes from the channel
rules and its campaign keys from its landing URL, by the convention of docs/spend.md: `utm_id`
is the campaign id, `skd_adset` the ad set (ad group) id and `skd_ad` the ad id; without a
`utm_id`, its `utm_campaign` is matched to the spend campaigns when reports are read.
"""

from __future__ import annotations

from skeldir.domains.ingestion.event import AttributionHints

PLATFORMS = ("meta", "google_ads", "tiktok", "microsoft_ads", "other")
# A touchpoint with no evidence of an ad platform (organic, direct, email).
NO_PLATFORM = ""
# A grain key's parts are joined by this character, which no kept value holds (hints are text
# from URLs and JSON; the unit separator is a control character the collector never sends).
SEPARATOR = "\x1f"


def campaign_key(hints: AttributionHints) -> tuple[str, str, str, str]:
    """(campaign id, utm_campaign when there is no campaign id, ad set id, ad id); '' for none."""
    campaign_id = _clean(hints.utm_id)
    return (
        campaign_id,
        "" if campaign_id else _clean(hints.utm_campaign),
        _clean(hints.skd_adset),
        _clean(hints.skd_ad),
    )


def _clean(value: str | None) -> str:
    # As SQL's btrim does (batch_arrays reads the stored touchpoints' keys the same way).
    return value.strip(" ").replace(SEPARATOR, " ") if value else ""
