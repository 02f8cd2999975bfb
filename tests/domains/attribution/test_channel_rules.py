import copy
import fnmatch
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skeldir.domains.attribution.channel_rule_defaults import DEFAULT_RULES
from skeldir.domains.attribution.channel_rule_format import FIELDS, RuleSetError
from skeldir.domains.attribution.channel_rules import RuleSet, default_rule_set
from skeldir.domains.attribution.channels import CHANNELS, channel_sort_key
from skeldir.domains.ingestion.event import AttributionHints


def extend(*rules, **document):
    return RuleSet.from_document({"version": 1, "extends": "default", "rules": list(rules),
                                  **document})


def test_default_rules_are_written_in_canonical_form():
    assert default_rule_set().to_document() == DEFAULT_RULES
    assert default_rule_set().channels == CHANNELS
    assert default_rule_set().fallback == "unknown"


def test_the_documented_default_rules_are_the_default_rules():
    text = (Path(__file__).parents[3] / "docs" / "channel-rules.md").read_text()
    documented = text.split("## The default rules", 1)[1].split("```json", 1)[1].split("```")[0]
    assert json.loads(documented) == DEFAULT_RULES


def test_a_tenant_rule_runs_before_the_defaults():
    rules = extend({"channel": "affiliate", "utm_source": {"values": ["partnerx"]}})
    assert rules.classify(AttributionHints(utm_source="PartnerX", utm_medium="cpc")) == "affiliate"
    assert rules.classify(AttributionHints(utm_source="partnerx-blog")) == "referral"
    assert rules.classify(AttributionHints(utm_source="google", utm_medium="cpc")) == "paid_search"
    assert rules.classify(AttributionHints(click_ids=(("gclid", "a"),))) == "paid_search"


def test_a_tenant_channel_sorts_after_the_defaults():
    rules = extend({"channel": "podcast", "utm_medium": ["Pod-Cast"]}, channels=["podcast"])
    assert rules.channels == (*CHANNELS, "podcast")
    assert rules.classify(AttributionHints(utm_medium="podcast")) == "podcast"
    assert sorted(rules.channels, key=channel_sort_key)[-2:] == ["unknown", "podcast"]


def test_a_replaced_rule_set_keeps_nothing_of_the_defaults():
    rules = RuleSet.from_document({
        "version": 1,
        "extends": None,
        "channels": ["direct", "partner", "unknown"],
        "rules": [
            {"channel": "partner", "referring_domain": {"suffixes": [".partner.example"]}},
            {"channel": "direct", "present": ["landing_path"]},
        ],
        "fallback": "unknown",
    })
    assert rules.channels == ("direct", "partner", "unknown")
    assert rules.classify(AttributionHints(referring_domain="partner.example")) == "partner"
    assert rules.classify(AttributionHints(referring_domain="https://a.partner.example/x")) == (
        "partner"
    )
    assert rules.classify(AttributionHints(referring_domain="notpartner.example")) == "unknown"
    assert rules.classify(AttributionHints(click_ids=(("gclid", "a"),))) == "unknown"
    assert rules.classify(AttributionHints(landing_path="/", source_name="pos")) == "direct"


def test_tenant_lists_campaign_patterns_landing_paths_and_source_names():
    rules = extend(
        {"channel": "affiliate", "referring_domain": {"lists": ["partners"]}},
        {"channel": "display", "utm_campaign": ["retarget-*", "*-banner-??"]},
        {"channel": "content", "landing_path": ["/blog/"], "absent": ["referring_domain"]},
        {"channel": "marketplace", "source_name": ["Amazon"], "utm_medium": ["cpc"]},
        channels=["content", "marketplace"],
        lists={"partners": {"hosts": ["deals.example"], "names": ["coupons"]}},
    )
    assert rules.classify(AttributionHints(referring_domain="www.deals.example")) == "affiliate"
    assert rules.classify(AttributionHints(referring_domain="coupons.co.uk")) == "affiliate"
    assert rules.classify(AttributionHints(referring_domain="a.deals.example")) == "referral"
    assert rules.classify(AttributionHints(utm_campaign="Retarget-May")) == "display"
    assert rules.classify(AttributionHints(utm_campaign="spring-banner-01")) == "display"
    assert rules.classify(AttributionHints(utm_campaign="spring-banner-001")) == "unknown"
    assert rules.classify(AttributionHints(landing_path="/Blog/post")) == "content"
    assert rules.classify(
        AttributionHints(landing_path="/blog/post", referring_domain="google.com")
    ) == "organic_search"
    assert rules.classify(AttributionHints(source_name="amazon", utm_medium="cpc")) == "marketplace"
    assert rules.classify(AttributionHints(source_name="amazon")) == "unknown"


def test_an_override_can_change_the_fallback():
    rules = extend(channels=["offline"], fallback="offline")
    assert rules.classify(AttributionHints(source_name="pos")) == "offline"
    assert rules.classify(AttributionHints(landing_path="/")) == "direct"


def test_an_override_resolves_to_a_self_contained_document():
    rules = extend({"channel": "affiliate", "utm_source": {"values": ["partnerx"]}})
    document = rules.to_document()
    assert document["extends"] is None
    assert document["rules"][1:] == DEFAULT_RULES["rules"]
    assert RuleSet.from_document(document) == rules
    assert RuleSet.from_document(document).fingerprint() == rules.fingerprint()


def test_to_document_returns_a_copy():
    rules = default_rule_set()
    rules.to_document()["rules"].clear()
    assert rules.to_document() == DEFAULT_RULES


def test_fingerprint_ignores_key_and_value_order_but_not_rule_order():
    first = {"channel": "affiliate", "utm_source": {"values": ["a", "b"]}, "utm_medium": ["cpc"]}
    second = {"utm_medium": ["CPC"], "utm_source": {"values": ["b", "a"]}, "channel": "affiliate"}
    other = {"channel": "email", "utm_medium": ["mail"]}
    assert extend(first, other).fingerprint() == extend(second, other).fingerprint()
    assert extend(first, other).fingerprint() != extend(other, first).fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", default_rule_set().fingerprint())


_BASE = {"version": 1, "extends": "default"}
_NULL = {"version": 1, "extends": None}
_TOO_MANY = {"channel": "display", "utm_campaign": [f"c{i}" for i in range(51)]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "document: must be an object, not an array"),
        ({"version": 1}, "document: missing key 'extends'"),
        ({**_BASE, "version": 2}, "version: must be 1"),
        ({**_BASE, "version": True}, "version: must be 1"),
        ({**_BASE, "extends": "defaults"}, 'extends: must be "default" or null'),
        ({**_BASE, "rule": []}, ("document: unknown key 'rule' (allowed: version, extends, "
                                "channels, lists, rules, fallback, platform_rules)")),
        ({**_BASE, "rules": {}}, "rules: must be an array, not an object"),
        ({**_BASE, "rules": [{"channel": "email"}] * 501}, "rules: at most 500 items, got 501"),
        ({**_BASE, "rules": [{"channel": "email", "utm_sauce": ["x"]}]},
         "rules[0]: unknown key 'utm_sauce' (allowed: channel, click_ids, utm_medium"),
        ({**_BASE, "rules": [{"utm_medium": ["x"]}]}, "rules[0]: missing key 'channel'"),
        ({**_BASE, "rules": [{"channel": "podcast", "utm_medium": ["podcast"]}]},
         "rules[0].channel: unknown channel 'podcast' (declare it under channels)"),
        ({**_BASE, "rules": [{"channel": 7, "utm_medium": ["x"]}]},
         "rules[0].channel: must be a string, not a number"),
        ({**_BASE, "rules": [{"channel": "email"}]}, "rules[0]: needs at least one condition"),
        ({**_BASE, "rules": [{"channel": "email", "utm_medium": "email"}]},
         "rules[0].utm_medium: must be an array, not a string"),
        ({**_BASE, "rules": [{"channel": "email", "utm_medium": ["ok"]},
                             {"channel": "email", "utm_medium": ["ok", 5]}]},
         "rules[1].utm_medium[1]: must be a string, not a number"),
        ({**_BASE, "rules": [{"channel": "email", "utm_medium": ["--"]}]},
         "rules[0].utm_medium[0]: '--' has no letters or digits"),
        ({**_BASE, "rules": [{"channel": "email", "click_ids": []}]},
         "rules[0].click_ids: must not be empty"),
        ({**_BASE, "rules": [{"channel": "email", "click_ids": ["g clid"]}]},
         "rules[0].click_ids[0]: 'g clid' is not a click id name"),
        ({**_BASE, "rules": [{"channel": "email", "utm_source": {}}]},
         ("rules[0].utm_source: needs at least one of values, hosts, suffixes, names, words, "
         "lists")),
        ({**_BASE, "rules": [{"channel": "email", "utm_source": {"lists": ["serch_engines"]}}]},
         ("rules[0].utm_source.lists[0]: unknown list 'serch_engines' (known: mail_hosts, "
         "search_engines, social_networks)")),
        ({**_BASE, "rules": [{"channel": "email", "referring_domain": {"suffixes": ["a.com"]}}]},
         ("rules[0].referring_domain.suffixes[0]: 'a.com' is not a domain suffix such as "
         "'.example.com'")),
        ({**_BASE, "rules": [{"channel": "email", "referring_domain": {"hosts": ["https://a.b"]}}]},
         ("rules[0].referring_domain.hosts[0]: 'https://a.b' is not a host such as "
         "'blog.example.com'")),
        ({**_BASE, "rules": [{"channel": "email", "referring_domain": {"names": ["a.b"]}}]},
         "rules[0].referring_domain.names[0]: 'a.b' is not a domain label such as 'google'"),
        ({**_BASE, "rules": [{"channel": "email", "utm_source": {"words": ["a-b"]}}]},
         "rules[0].utm_source.words[0]: 'a-b' is not a word of letters and digits"),
        ({**_BASE, "rules": [{"channel": "email", "utm_source": {"values": ["x" * 254]}}]},
         "rules[0].utm_source.values[0]: at most 253 characters"),
        ({**_BASE, "rules": [{"channel": "display", "utm_campaign": ["*" * 101]}]},
         "rules[0].utm_campaign[0]: a pattern has at most 100 characters"),
        ({**_BASE, "rules": [_TOO_MANY]}, "rules[0].utm_campaign: at most 50 items, got 51"),
        ({**_BASE, "rules": [{"channel": "direct", "landing_path": ["blog/"]}]},
         "rules[0].landing_path[0]: 'blog/' must start with '/'"),
        ({**_BASE, "rules": [{"channel": "direct", "present": ["utm_term"]}]},
         "rules[0].present[0]: 'utm_term' is not a field (click_ids, utm_medium"),
        ({**_BASE, "rules": [{"channel": "direct", "present": ["landing_path"],
                              "absent": ["landing_path"]}]},
         "rules[0]: 'landing_path' cannot be both present and absent"),
        ({**_BASE, "channels": ["email"]}, "channels[0]: 'email' is a default channel"),
        ({**_BASE, "channels": ["pod", "pod"]}, "channels[1]: 'pod' is declared twice"),
        ({**_BASE, "channels": ["Podcast"]}, "channels[0]: 'Podcast' is not a name"),
        ({**_BASE, "fallback": "other"}, "fallback: unknown channel 'other'"),
        ({**_BASE, "lists": {"search_engines": {"names": ["kagi"]}}},
         "lists.search_engines: already a default list"),
        ({**_BASE, "lists": {"partners": {"lists": ["mail_hosts"]}}},
         "lists.partners: unknown key 'lists' (allowed: values, hosts, suffixes, names, words)"),
        ({**_BASE, "lists": []}, "lists: must be an object, not an array"),
        ({**_NULL, "rules": []}, "channels: required when extends is null"),
        ({**_NULL, "channels": ["unknown", "web"]},
         "channels: must declare 'direct' (attribution falls back to it)"),
    ],
)
def test_invalid_documents_name_the_bad_item(document, message):
    with pytest.raises(RuleSetError) as raised:
        RuleSet.from_document(document)
    assert str(raised.value).startswith(message)


def test_validation_never_changes_the_input():
    document = {**_BASE, "rules": [{"channel": "email", "utm_medium": ["News-Letter", "a"]}]}
    before = copy.deepcopy(document)
    RuleSet.from_document(document)
    assert document == before


# ---- properties over generated tenant documents and hints ----

_WORDS = ["google", "facebook", "fb", "x", "partnerx", "mail", "example", "co", "blog", "cpc",
          "email", "spring", "sale", "web", "pos", "podcast"]
_EXTRA_CHANNELS = ["podcast", "partner", "offline"]
words = st.sampled_from(_WORDS)
hosts = st.lists(words, min_size=1, max_size=3).map(".".join)
place = st.fixed_dictionaries({}, optional={
    "values": st.lists(words, min_size=1, max_size=2),
    "hosts": st.lists(hosts, min_size=1, max_size=2),
    "suffixes": st.lists(hosts.map(lambda host: "." + host), min_size=1, max_size=2),
    "names": st.lists(words, min_size=1, max_size=2),
    "words": st.lists(words, min_size=1, max_size=2),
    "lists": st.lists(st.sampled_from(["search_engines", "social_networks", "mail_hosts"]),
                      min_size=1, max_size=2),
}).filter(bool)
conditions = st.fixed_dictionaries({}, optional={
    "click_ids": st.lists(st.sampled_from(["gclid", "fbclid", "partner_id"]), min_size=1,
                          max_size=3),
    "utm_medium": st.lists(words, min_size=1, max_size=2),
    "utm_source": place,
    # Under the document's limits (at most 50 patterns): a longer list is refused, not classified.
    "utm_campaign": st.lists(st.sampled_from(["spring-*", "*sale*", "b?og"]), min_size=1,
                             max_size=3),
    "referring_domain": place,
    "landing_path": st.lists(st.sampled_from(["/", "/blog", "/p/"]), min_size=1, max_size=2),
    "source_name": st.lists(st.sampled_from(["web", "pos", "Amazon"]), min_size=1, max_size=3),
    "present": st.lists(st.sampled_from(FIELDS), min_size=1, max_size=1),
}).filter(bool)
rules = st.builds(
    lambda channel, when: {"channel": channel, **when},
    st.sampled_from([*CHANNELS, *_EXTRA_CHANNELS]), conditions,
)
documents = st.builds(
    lambda rules, extends, fallback: {
        "version": 1, "extends": "default", "channels": _EXTRA_CHANNELS,
        "rules": rules, **({"fallback": fallback} if fallback else {}),
    } if extends else {
        "version": 1, "extends": None, "channels": [*CHANNELS, *_EXTRA_CHANNELS],
        "lists": DEFAULT_RULES["lists"], "rules": rules, **({"fallback": fallback} if fallback else {}),
    },
    st.lists(rules, max_size=6), st.booleans(), st.none() | st.sampled_from(_EXTRA_CHANNELS),
)
text = st.none() | st.text(max_size=12) | st.builds(
    lambda scheme, parts, sep: scheme + sep.join(parts),
    st.sampled_from(["", "https://", "http://www.", " "]),
    st.lists(st.sampled_from([*_WORDS, "GOOGLE", "t", "com"]), min_size=1, max_size=3),
    st.sampled_from([".", "-", "/", " "]),
)
hints = st.builds(
    AttributionHints,
    utm_source=text, utm_medium=text, utm_campaign=text, referring_domain=text,
    landing_path=st.none() | st.sampled_from(["", "/", "/blog/x", "/p/1", " /P/"]),
    source_name=st.none() | st.sampled_from(["", "web", "POS", "amazon"]),
    click_ids=st.lists(
        st.tuples(st.sampled_from(["gclid", " FBCLID", "partner_id", "x"]), st.text(max_size=2)),
        max_size=2,
    ).map(tuple),
)


@given(documents, st.lists(hints, min_size=1, max_size=5))
def test_classify_returns_a_declared_channel_and_ignores_its_caches(document, many):
    rules = RuleSet.from_document(document)
    first = [rules.classify(h) for h in many]
    assert set(first) <= set(rules.channels)
    assert [rules.classify(h) for h in reversed(many)] == first[::-1]
    assert [RuleSet.from_document(document).classify(h) for h in many] == first


@given(documents)
def test_documents_round_trip(document):
    rules = RuleSet.from_document(document)
    again = RuleSet.from_resolved(rules.to_document())
    assert again == rules
    assert again.to_document() == rules.to_document()
    assert again.fingerprint() == rules.fingerprint()


def _shuffled(value, rng):
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: _shuffled(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


@given(documents, st.randoms())
def test_fingerprint_is_stable_under_key_order(document, rng):
    shuffled = _shuffled(document, rng)
    assert RuleSet.from_document(shuffled).fingerprint() == (
        RuleSet.from_document(document).fingerprint()
    )


@given(hints)
def test_the_first_matching_rule_wins(h):
    rules = extend(
        {"channel": "partner", "present": ["landing_path"]},
        {"channel": "podcast", "absent": ["landing_path"]},
        {"channel": "offline", "click_ids": ["gclid"]},
        channels=["partner", "podcast", "offline"],
    )
    landed = bool(h.landing_path and h.landing_path.strip())
    assert rules.classify(h) == ("partner" if landed else "podcast")


def _clean(value):
    return value.strip().lower() if value else ""


def _place_matches(spec, lists, cleaned, always_host):
    parts = [spec, *(lists[name] for name in spec.get("lists", ()))]
    every = {key: {item for part in parts for item in part.get(key, ())} for key in
             ("values", "hosts", "suffixes", "names", "words")}
    if cleaned in every["values"]:
        return True
    if not always_host and "." not in cleaned:
        return bool(set(re.split(r"[^a-z0-9]+", cleaned)) & (every["names"] | every["words"]))
    authority = re.split(r"[/?#]", cleaned.split("//", 1)[-1])[0]
    host = authority.rsplit("@", 1)[-1].split(":")[0].rstrip(".").removeprefix("www.")
    return (host in every["hosts"]
            or any(host == suffix[1:] or host.endswith(suffix) for suffix in every["suffixes"])
            or bool(set(host.split(".")[:-1]) & every["names"]))


def _holds(field, condition, h, lists):
    if field == "click_ids":
        return bool({name.strip().lower() for name, value in h.click_ids if value} & set(condition))
    cleaned = _clean(getattr(h, field))
    if not cleaned:
        return False
    if field == "utm_medium":
        return re.sub(r"[^a-z0-9]", "", cleaned) in condition
    if field in ("utm_source", "referring_domain"):
        return _place_matches(condition, lists, cleaned, field == "referring_domain")
    if field == "utm_campaign":
        return any(fnmatch.fnmatchcase(cleaned, glob) for glob in condition)
    if field == "landing_path":
        return cleaned.startswith(tuple(condition))
    return cleaned in condition


def _present(field, h):
    if field == "click_ids":
        return any(value for _, value in h.click_ids)
    return bool(_clean(getattr(h, field)))


def _reference_classify(document, h):
    """A direct, slow reading of the documented semantics."""
    for rule in document["rules"]:
        if (all(_holds(f, rule[f], h, document["lists"]) for f in FIELDS if f in rule)
                and all(_present(f, h) for f in rule.get("present", ()))
                and not any(_present(f, h) for f in rule.get("absent", ()))):
            return rule["channel"]
    return document["fallback"]


@given(documents, st.lists(hints, min_size=1, max_size=5))
def test_the_compiled_rules_agree_with_a_direct_reading(document, many):
    rules = RuleSet.from_document(document)
    resolved = rules.to_document()
    assert [rules.classify(h) for h in many] == [_reference_classify(resolved, h) for h in many]


@given(hints)
def test_the_default_rules_agree_with_a_direct_reading(h):
    assert default_rule_set().classify(h) == _reference_classify(DEFAULT_RULES, h)


@pytest.mark.parametrize(
    ("hints", "platform"),
    [
        (AttributionHints(utm_source="facebook", utm_medium="paid_social"), "meta"),
        (AttributionHints(utm_source="ig", utm_medium="cpc"), "meta"),
        (AttributionHints(click_ids=(("fbclid", "a"),)), "meta"),
        (AttributionHints(utm_source="facebook", utm_medium="social"), ""),
        (AttributionHints(utm_source="google", utm_medium="cpc"), "google_ads"),
        (AttributionHints(click_ids=(("gclid", "a"),)), "google_ads"),
        (AttributionHints(click_ids=(("wbraid", "a"),)), "google_ads"),
        (AttributionHints(referring_domain="www.google.com"), ""),
        (AttributionHints(utm_source="tiktok", utm_medium="paid"), "tiktok"),
        (AttributionHints(click_ids=(("ttclid", "a"),)), "tiktok"),
        (AttributionHints(utm_source="bing", utm_medium="ppc"), "microsoft_ads"),
        (AttributionHints(click_ids=(("msclkid", "a"),)), "microsoft_ads"),
        (AttributionHints(click_ids=(("li_fat_id", "a"),)), "other"),
        (AttributionHints(utm_source="pinterest", utm_medium="cpc"), "other"),
        (AttributionHints(utm_source="newsletter", utm_medium="email"), ""),
        (AttributionHints(landing_path="/"), ""),
    ],
)
def test_the_default_platform_rules(hints, platform):
    assert default_rule_set().platform(hints) == platform


def test_a_tenant_platform_rule_runs_before_the_defaults_in_the_same_format():
    rules = extend(
        platform_rules=[
            {"platform": "other", "utm_source": {"names": ["pinterest"]}},
            {"platform": "meta", "utm_campaign": ["fb-*"]},
        ]
    )
    assert rules.platform(AttributionHints(utm_source="pinterest")) == "other"
    assert rules.platform(AttributionHints(utm_campaign="FB-spring")) == "meta"
    assert rules.platform(AttributionHints(utm_source="google", utm_medium="cpc")) == "google_ads"
    replaced = RuleSet.from_document(
        {
            **_NULL,
            "channels": ["direct", "unknown"],
            "platform_rules": [{"platform": "tiktok", "utm_medium": ["video"]}],
        }
    )
    assert replaced.platform(AttributionHints(utm_source="google", utm_medium="cpc")) == ""
    assert replaced.platform(AttributionHints(utm_medium="video")) == "tiktok"


def test_a_document_silent_on_platforms_has_the_default_platform_rules():
    rules = RuleSet.from_document(_BASE)
    assert rules.platform(AttributionHints(click_ids=(("gclid", "a"),))) == "google_ads"
    stored = rules.to_document()
    del stored["platform_rules"]
    assert RuleSet.from_resolved(stored) == rules


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"platform": "myspace", "utm_medium": ["cpc"]}, "platform_rules[0].platform: must be one"),
        ({"platform": "meta"}, "platform_rules[0]: needs at least one condition"),
        ({"channel": "direct", "utm_medium": ["cpc"]}, "platform_rules[0]: missing key 'platform'"),
    ],
)
def test_invalid_platform_rules_name_the_bad_item(rule, message):
    with pytest.raises(RuleSetError) as raised:
        extend(platform_rules=[rule])
    assert str(raised.value).startswith(message)
