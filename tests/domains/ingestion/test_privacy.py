from decimal import Decimal
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from skeldir.domains.ingestion.privacy import (
    ATTRIBUTION_QUERY_KEYS,
    CLICK_ID_KEYS,
    MAX_CLICK_ID_LENGTH,
    MAX_TEXT_LENGTH,
    TEXT_KEYS,
    UTM_KEYS,
    attribution_fields,
    attribution_hints,
    landing_hints,
    project,
    referring_domain,
    scrub_url,
    storable_text,
)


def test_landing_hints_keep_utm_fields_and_click_ids_only():
    path, utm, click_ids = landing_hints(
        "/products/pen?utm_source=news&utm_medium=email&email=alice%40example.invalid"
        "&gclid=abc&fbclid=xyz&token=secret&utm_campaign=&utm_source=second"
    )
    assert path == "/products/pen"
    assert utm == {"utm_source": "news", "utm_medium": "email"}
    assert click_ids == (("fbclid", "xyz"), ("gclid", "abc"))


def test_landing_hints_of_an_absolute_url_give_its_path():
    assert landing_hints("https://shop.example/collections/all?UTM_Source=x&GCLID=1") == (
        "/collections/all",
        {"utm_source": "x"},
        (("gclid", "1"),),
    )
    assert landing_hints("http://www.example.com?source=abc") == ("/", {}, ())


@pytest.mark.parametrize("url", [None, "", "   ", "javascript:alert(1)", "data:text/plain,hi"])
def test_landing_hints_of_nothing_usable(url):
    assert landing_hints(url) == (None, {}, ())


def test_landing_hints_bound_their_values():
    path, utm, click_ids = landing_hints(
        "/" + "p" * 2000 + "?" + urlencode({"utm_term": "t" * 2000, "msclkid": "m" * 2000})
    )
    assert len(path) == MAX_TEXT_LENGTH
    assert utm["utm_term"] == "t" * MAX_TEXT_LENGTH
    assert click_ids == (("msclkid", "m" * MAX_CLICK_ID_LENGTH),)


def test_mixed_case_click_id_names_are_canonical():
    assert landing_hints("/?sccid=s&LI_FAT_ID=l")[2] == (("ScCid", "s"), ("li_fat_id", "l"))


def test_landing_urls_keep_the_campaign_ad_set_and_ad_ids():
    path, utm, click_ids = landing_hints(
        "https://shop.example/p?utm_source=facebook&utm_id=120&skd_adset=121&skd_ad=122"
        "&utm_content=video&utm_term=shoes&fbclid=F&email=x%40y"
    )
    assert utm == {"utm_source": "facebook", "utm_term": "shoes", "utm_content": "video",
                   "utm_id": "120", "skd_adset": "121", "skd_ad": "122"}
    assert click_ids == (("fbclid", "F"),)


def test_attribution_keys_cover_utm_and_common_click_ids():
    assert set(UTM_KEYS) | {"gclid", "gbraid", "wbraid", "dclid", "msclkid", "fbclid", "ttclid",
                            "li_fat_id", "twclid", "ScCid", "epik"} <= ATTRIBUTION_QUERY_KEYS


query_names = st.sampled_from(
    [*ATTRIBUTION_QUERY_KEYS, "email", "e", "token", "key", "name", "phone", "q", "skd_adsetx",
     "_bt", "source", "utm_sourcex", "xgclid"]
) | st.text(min_size=1, max_size=12)
query_values = st.text(max_size=40)


@given(st.lists(st.tuples(query_names, query_values), max_size=12), st.text(max_size=30))
def test_landing_hints_never_let_through_a_value_of_another_parameter(params, path):
    url = "/" + path.replace("?", "").replace("#", "") + "?" + urlencode(params)
    _, utm, click_ids = landing_hints(url)
    allowed = {name.lower() for name in ATTRIBUTION_QUERY_KEYS}
    allowed_values = {storable_text(value) for name, value in params if name.lower() in allowed}
    assert set(utm) <= set(TEXT_KEYS)
    assert {name for name, _ in click_ids} <= set(CLICK_ID_KEYS)
    assert list(click_ids) == sorted(click_ids)
    for value in [*utm.values(), *(value for _, value in click_ids)]:
        assert value in allowed_values


@given(st.lists(st.tuples(query_names, query_values), max_size=12))
def test_scrubbing_keeps_exactly_the_landing_hints(params):
    url = "https://shop.example/landing?" + urlencode(params)
    scrubbed = scrub_url(url)
    assert landing_hints(scrubbed) == landing_hints(url)
    assert scrub_url(scrubbed) == scrubbed
    _, kept_utm, kept_click_ids = landing_hints(url)
    assert scrubbed.count("=") == len(kept_utm) + len(kept_click_ids)


@pytest.mark.parametrize(
    ("url", "scrubbed"),
    [
        ("https://user:pw@Shop.Example:8443/a/b?email=x%40y.z&utm_source=ig#frag",
         "https://shop.example/a/b?utm_source=ig"),
        ("/?_bt=eyJfcmFpbHMiOnt9--abc", "/"),
        ("/products?utm_source=x&gclid=g", "/products?utm_source=x&gclid=g"),
        ("http://www.example.com?source=abc", "http://www.example.com/"),
        ("javascript:alert(document.cookie)", None),
        ("", None),
        (None, None),
        ("/pens ?email=x%40y.z", "/pens"),
        ("\x1b\x85/pens\u3000", "/pens"),
        ("http://[::1]:8080/a?gclid=g", "http://[::1]/a?gclid=g"),
        ("http://exa mple.com/p?utm_source=x", "/p?utm_source=x"),
        ("////p", "/p"),
        ("http:javascript:alert(1)", None),
    ],
)
def test_scrub_url(url, scrubbed):
    assert scrub_url(url) == scrubbed


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("http://www.otherexample.com", "www.otherexample.com"),
        ("https://WWW.Google.COM/search?q=my+name", "www.google.com"),
        ("https://alice:secret@mail.example.com:8080/u/0/inbox", "mail.example.com"),
        ("//cdn.example.net/x", "cdn.example.net"),
        ("www.bing.com/search?q=x", "www.bing.com"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
        ("", None),
        ("   ", None),
        (None, None),
        ("/relative/path", None),
        ("http://", None),
        ("http://exa mple.com/", None),
        ("http://[::1", None),
        ("http://[::1]:8080/x", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("::1", None),
        ("\x1b//cdn.example.net/x", "cdn.example.net"),
    ],
)
def test_referring_domain(url, domain):
    assert referring_domain(url) == domain


@given(st.text(max_size=60))
def test_referring_domain_is_a_bare_lower_case_host(url):
    domain = referring_domain(url)
    if domain is not None:
        assert domain == domain.lower()
        assert not set(domain) & set("/?#@ ")


# Text shaped like URLs, from the pieces that make parsing go wrong, besides any text.
URL_PIECES = st.sampled_from([
    "https:", "http:", "javascript:", "//", "/", "?", "#", "&", "=", "@", ":", "[", "]", "[::1]",
    "example.com", "utm_source", "GCLID", "%20", "+", " ", "\t", "\n", "\x00", "\x1b", "\x85",
    "\xa0", "\u3000", "é",
])
URLS = st.text(max_size=40) | st.lists(URL_PIECES | st.text(max_size=3), max_size=16).map("".join)


@given(URLS)
@example("0 ?")
@example("http:////x")
def test_scrubbing_twice_is_scrubbing_once(url):
    scrubbed = scrub_url(url)
    assert scrub_url(scrubbed) == scrubbed


@given(URLS)
@example("\x1b\x850")
@example("http://exa mple.com/p?utm_source=x")
def test_a_scrubbed_url_gives_the_landing_hints_of_the_original(url):
    assert landing_hints(scrub_url(url)) == landing_hints(url)


@given(URLS)
@example("[::1]")
@example("http://[2001:db8::1]/")
def test_the_referring_domain_of_a_referring_domain_is_itself(url):
    domain = referring_domain(url)
    assert referring_domain(domain) == domain


@given(st.dictionaries(
    st.sampled_from([*ATTRIBUTION_QUERY_KEYS, "UTM_Source", "Gclid", "email", "note"]),
    st.text(max_size=600) | st.integers() | st.none(),
))
def test_attribution_fields_keep_what_the_hints_read_of_a_bag_and_nothing_else(bag):
    kept = attribution_fields(bag)
    assert attribution_hints(fields=kept) == attribution_hints(fields=bag)
    assert {key.lower() for key in kept} <= {key.lower() for key in ATTRIBUTION_QUERY_KEYS}
    assert all(isinstance(value, str) and len(value) <= MAX_TEXT_LENGTH for value in kept.values())


def test_project_keeps_only_named_fields():
    payload = {
        "id": 1,
        "email": "alice@example.invalid",
        "total_price_set": {"shop_money": {"amount": "1.00", "currency_code": "USD", "x": 1}},
        "refunds": [{"id": 2, "note": "call Alice"}, "not an object"],
        "landing_site": "/?utm_source=x&email=alice%40example.invalid",
    }
    spec = {
        "id": True,
        "missing": True,
        "total_price_set": {"shop_money": {"amount": True, "currency_code": True}},
        "refunds": [{"id": True}],
        "landing_site": scrub_url,
    }
    assert project(payload, spec) == {
        "id": 1,
        "total_price_set": {"shop_money": {"amount": "1.00", "currency_code": "USD"}},
        "refunds": [{"id": 2}],
        "landing_site": "/?utm_source=x",
    }


def test_project_drops_values_whose_shape_does_not_fit_the_spec():
    payload = {"id": {"nested": "alice@example.invalid"}, "money": "1.00", "list": {"a": 1}}
    spec = {"id": True, "money": {"amount": True}, "list": [{"a": True}]}
    assert project(payload, spec) == {}


def test_project_bounds_and_makes_leaves_json_safe():
    payload = {
        "text": "x" * 5000,
        "exact": Decimal("10.50"),
        "huge_exponent": Decimal("1E+999999999"),
        "huge_int": 10**40,
        "flag": True,
        "nothing": None,
    }
    projected = project(payload, dict.fromkeys(payload, True))
    assert projected["text"] == "x" * MAX_TEXT_LENGTH
    assert projected["exact"] == "10.50"
    assert projected["huge_exponent"] == "1E+999999999"
    assert projected["huge_int"] == str(10**40)
    assert projected["flag"] is True and projected["nothing"] is None
    orjson.dumps(projected)


def test_attribution_hints_combine_the_landing_url_with_explicit_fields():
    hints = attribution_hints(
        landing_url="/p?utm_source=google&utm_medium=cpc&gclid=A1&email=x%40y.z",
        referrer="https://www.bing.com/search?q=secret",
        source_name="web",
        fields={"utm_source": "newsletter", "fbclid": "F2", "email": "x@y.z", "utm_term": ""},
    )
    assert (hints.utm_source, hints.utm_medium) == ("newsletter", "cpc")
    assert hints.click_ids == (("fbclid", "F2"), ("gclid", "A1"))
    assert hints.referring_domain == "www.bing.com" and hints.landing_path == "/p"
    assert "x@y.z" not in repr(hints) and hints.utm_term is None
