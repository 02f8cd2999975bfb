"""Redaction over hostile URLs, referrers, key-value bags and payloads: it never raises, keeps
only allow-listed, bounded text that PostgreSQL can store, and its laws hold for hostile input
too (scrubbing is idempotent and keeps exactly the landing hints)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hostile import (
    HOSTILE_TEXT,
    SCRIPT,
    assert_storable,
    bounded_time,
    fuzz_settings,
    hostile_json,
    hostile_text,
)
from skeldir.domains.ingestion.hints import hints_document
from skeldir.domains.ingestion.privacy import (
    ATTRIBUTION_QUERY_KEYS,
    MAX_TEXT_LENGTH,
    attribution_fields,
    attribution_hints,
    landing_hints,
    project,
    referring_domain,
    scrub_url,
)

attribution_names = st.sampled_from(sorted(ATTRIBUTION_QUERY_KEYS))
query_parts = st.lists(
    st.tuples(st.one_of(attribution_names, hostile_text), hostile_text), max_size=5
).map(lambda pairs: "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs))
hosts = st.sampled_from(
    ["shop.example", "EVIL.example.", "[::1]", "[::1", "user:pw@host:99999", "\uff03x", "", "%00",
     "xn--nxasmq6b", "a" * 300, "127.0.0.1:80"]
)
urls = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    hostile_text,
    st.builds(
        lambda scheme, host, path, query, fragment: f"{scheme}{host}/{path}?{query}#{fragment}",
        st.sampled_from(["https://", "http://", "//", "", "javascript:", "data:", "HTTPS://",
                         " \x00https://", "ftp://"]),
        hosts,
        hostile_text,
        query_parts,
        hostile_text,
    ),
)
NUL_URLS = ("https://shop.example/a\x00b?utm_source=x%00y&gclid=%00", "/?utm_source=%00")


@fuzz_settings(examples=200)
@given(url=urls)
@example(url=NUL_URLS[0])
@example(url=NUL_URLS[1])
def test_scrubbed_urls_keep_only_storable_allow_listed_parts(url):
    scrubbed = bounded_time(lambda: scrub_url(url))
    hints = bounded_time(lambda: landing_hints(url))
    assert_storable(list(hints), "landing hints")
    if scrubbed is None:
        return
    assert_storable(scrubbed, "scrubbed URL")
    assert scrub_url(scrubbed) == scrubbed
    assert landing_hints(scrubbed) == hints
    parts = urlsplit(scrubbed)
    assert parts.scheme in ("", "http", "https") and not parts.fragment
    assert parts.username is None and parts.password is None
    assert not scrubbed.lower().startswith(("javascript:", "data:"))


@fuzz_settings(examples=150)
@given(url=urls)
def test_referring_domains_are_bare_hosts_or_none(url):
    host = bounded_time(lambda: referring_domain(url))
    assert host is None or (host == host.lower() and "/" not in host and "@" not in host
                            and "\x00" not in host and len(host) <= 255)


@fuzz_settings(examples=150)
@given(
    landing=urls,
    referrer=urls,
    source_name=st.one_of(st.none(), hostile_text),
    fields=st.dictionaries(st.one_of(attribution_names, hostile_text), hostile_json, max_size=6),
)
@example(landing=NUL_URLS[0], referrer="", source_name="web\x00", fields={"utm_term": "a\x00"})
def test_attribution_hints_are_storable_and_bounded(landing, referrer, source_name, fields):
    # Regression: a NUL (raw, or "%00" in a query) reached the stored hints; PostgreSQL refused
    # the jsonb and the webhook or touchpoint request failed with a 500.
    hints = bounded_time(lambda: attribution_hints(
        landing_url=landing, referrer=referrer, source_name=source_name, fields=fields
    ))
    document = hints_document(hints)
    assert_storable(document, "hints")
    for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                 "landing_path", "source_name"):
        assert document[name] is None or len(document[name]) <= MAX_TEXT_LENGTH
    kept = attribution_fields(fields)
    assert_storable(kept, "attribution fields")
    assert all(key.lower() in {k.lower() for k in ATTRIBUTION_QUERY_KEYS} for key in kept)


SPEC = {
    "id": True,
    "name": True,
    "amount": {"value": True, "currency": True},
    "items": [{"sku": True, "price": True}],
    "landing_site": scrub_url,
    "referring_site": referring_domain,
}


@fuzz_settings(examples=150)
@given(payload=st.dictionaries(st.sampled_from([*SPEC, "email", "phone"]), hostile_json))
@example(payload={"id": "a\x00", "amount": {"value": "\x00"}, "items": [{"sku": "\x00"}]})
@example(payload={"name": SCRIPT, "email": "alice@example.invalid"})
def test_projections_keep_only_named_storable_fields(payload):
    projected = bounded_time(lambda: project(payload, SPEC))
    assert_storable(projected, "projection")
    assert set(projected) <= set(SPEC)
    assert "email" not in projected and "phone" not in projected


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "paid\x00"])
def test_a_nul_becomes_a_replacement_character_not_nothing(text):
    # "paid\0" must not turn into "paid": a status that was not valid stays not valid.
    assert project({"status": text}, {"status": True}) == {"status": text.replace("\x00", "\ufffd")}
