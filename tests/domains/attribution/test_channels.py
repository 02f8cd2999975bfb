import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.domains.attribution.channel_rules import default_rule_set
from skeldir.domains.attribution.channels import CHANNELS, channel_sort_key, classify
from skeldir.domains.ingestion.event import AttributionHints


def test_channel_order_is_fixed():
    assert CHANNELS == (
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


def test_unknown_channel_names_sort_after_known_ones_alphabetically():
    names = ["podcast", "unknown", "direct", "affiliate_x", "email"]
    assert sorted(names, key=channel_sort_key) == [
        "direct", "email", "unknown", "affiliate_x", "podcast",
    ]


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (AttributionHints(click_ids=(("gclid", "abc"),)), "paid_search"),
        (AttributionHints(click_ids=(("MSCLKID", "abc"),)), "paid_search"),
        (AttributionHints(click_ids=(("wbraid", "abc"),)), "paid_search"),
        (AttributionHints(click_ids=(("fbclid", "abc"),)), "paid_social"),
        (AttributionHints(click_ids=(("ScCid", "abc"),)), "paid_social"),
        (AttributionHints(click_ids=(("li_fat_id", "abc"),)), "paid_social"),
        (AttributionHints(click_ids=(("gclid", "abc"),), utm_medium="email"), "paid_search"),
        (AttributionHints(click_ids=(("gclid", ""),), utm_medium="email"), "email"),
        (AttributionHints(utm_source="google", utm_medium="cpc"), "paid_search"),
        (AttributionHints(utm_source="bing", utm_medium="PPC"), "paid_search"),
        (AttributionHints(utm_source="facebook", utm_medium="cpc"), "paid_social"),
        (AttributionHints(utm_source="ig", utm_medium="paid"), "paid_social"),
        (AttributionHints(utm_source="linkedin.com", utm_medium="paidsearch"), "paid_social"),
        (AttributionHints(utm_source="t.co", utm_medium="ppc"), "paid_social"),
        (AttributionHints(utm_source="x", utm_medium="cpc"), "paid_social"),
        (AttributionHints(utm_source="google-facebook", utm_medium="cpc"), "paid_search"),
        (AttributionHints(utm_source="mail.google.com", utm_medium="cpc"), "paid_search"),
        (AttributionHints(utm_source="facebook", utm_medium="paid_social"), "paid_social"),
        (AttributionHints(utm_source="tiktok", utm_medium="Paid-Social"), "paid_social"),
        (AttributionHints(utm_source="klaviyo", utm_medium="email"), "email"),
        (AttributionHints(utm_medium="Newsletter"), "email"),
        (AttributionHints(utm_source="facebook", utm_medium="social"), "organic_social"),
        (AttributionHints(utm_source="facebook", utm_medium="display"), "display"),
        (AttributionHints(utm_medium="banner"), "display"),
        (AttributionHints(utm_medium="cpm"), "display"),
        (AttributionHints(utm_medium="affiliate"), "affiliate"),
        (AttributionHints(utm_medium="referral"), "referral"),
        (AttributionHints(utm_medium="organic", utm_source="google"), "organic_search"),
        (AttributionHints(referring_domain="www.google.com"), "organic_search"),
        (AttributionHints(referring_domain="google.co.uk"), "organic_search"),
        (AttributionHints(referring_domain="search.yahoo.com"), "organic_search"),
        (AttributionHints(referring_domain="duckduckgo.com"), "organic_search"),
        (AttributionHints(referring_domain="https://www.bing.com/search?q=x"), "organic_search"),
        (AttributionHints(referring_domain="https://u@mail.google.com:443/u/0"), "email"),
        (AttributionHints(referring_domain="http://[malformed"), "referral"),
        (AttributionHints(referring_domain="l.facebook.com"), "organic_social"),
        (AttributionHints(referring_domain="t.co"), "organic_social"),
        (AttributionHints(referring_domain="X.com"), "organic_social"),
        (AttributionHints(referring_domain="www.reddit.com"), "organic_social"),
        (AttributionHints(referring_domain="youtube.com"), "organic_social"),
        (AttributionHints(referring_domain="mail.google.com"), "email"),
        (AttributionHints(referring_domain="outlook.live.com"), "email"),
        (AttributionHints(referring_domain="blog.example.org"), "referral"),
        (AttributionHints(referring_domain="x.example.org"), "referral"),
        (AttributionHints(referring_domain="my-google.com"), "referral"),
        (AttributionHints(referring_domain="www.google.com."), "organic_search"),
        (AttributionHints(referring_domain="http://"), "referral"),
        (AttributionHints(referring_domain="blog.example.org", utm_source="google"), "referral"),
        (AttributionHints(utm_medium="qr", referring_domain="google.com"), "organic_search"),
        (AttributionHints(utm_source="google"), "organic_search"),
        (AttributionHints(utm_source="Instagram"), "organic_social"),
        (AttributionHints(utm_source="fb"), "organic_social"),
        (AttributionHints(utm_source="partner-blog"), "referral"),
        (AttributionHints(utm_source="fb.example.org"), "referral"),
        (AttributionHints(utm_source="mail.google.com"), "email"),
        (AttributionHints(utm_medium="--", landing_path="/"), "direct"),
        (AttributionHints(source_name="web", landing_path="/products/mug"), "direct"),
        (AttributionHints(landing_path="/"), "direct"),
        (AttributionHints(source_name="web"), "unknown"),
        (AttributionHints(source_name="shopify_draft_order", landing_path="/"), "unknown"),
        (AttributionHints(source_name="pos"), "unknown"),
        (AttributionHints(), "unknown"),
        (AttributionHints(utm_source="  ", utm_medium="", landing_path="/"), "direct"),
    ],
)
def test_classify_examples(hints, expected):
    assert classify(hints) == expected


optional_text = st.none() | st.text(max_size=20)


@given(
    st.builds(
        AttributionHints,
        utm_source=optional_text,
        utm_medium=optional_text,
        click_ids=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=5)), max_size=3).map(
            tuple
        ),
        landing_path=optional_text,
        referring_domain=optional_text,
        source_name=optional_text,
    )
)
def test_classify_always_returns_a_default_channel(hints):
    assert classify(hints) in CHANNELS


def test_classify_is_the_default_rule_set():
    hints = AttributionHints(utm_source="google", utm_medium="cpc")
    assert classify(hints) == default_rule_set().classify(hints) == "paid_search"
    assert default_rule_set().channels == CHANNELS
