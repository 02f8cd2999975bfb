"""Pure parts of privacy, by property: subjects hash like stitch keys, Shopify compliance bodies
and consent states are read or refused cleanly whatever arrives, and tenant tables are ordered
children first."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from skeldir.domains.privacy.consent import Consent, ConsentError, read_consent
from skeldir.domains.ingestion.stitching import CUSTOMER, stitch_key
from skeldir.domains.privacy import shopify_compliance
from skeldir.domains.privacy.subjects import Subject, SubjectError, subject_of
from skeldir.operations.tenant_deletion import _children_first

KEY = b"k" * 32
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner,
                                                                max_size=4),
    max_leaves=20,
)


@given(st.emails(), st.sampled_from([str.upper, str.lower, lambda s: f"  {s} "]))
def test_an_email_hashes_to_the_stitch_key_orders_carry(email, spelling):
    subject = subject_of(KEY, customer_refs=[spelling(email)])
    assert subject.customer_keys == (stitch_key(KEY, CUSTOMER, email),)
    # The stored document holds the digest, never the email.
    assert email.lower() not in json.dumps(subject.document()).lower()
    assert Subject.from_document(subject.document()) == subject


@given(json_values)
def test_any_consent_value_is_read_or_refused_cleanly(value):
    try:
        consent = read_consent(value)
    except ConsentError:
        return
    assert isinstance(consent, Consent)


@given(st.sampled_from(sorted(shopify_compliance.TOPICS)),
       st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_compliance_body_is_read_or_refused_cleanly(topic, body):
    try:
        request = shopify_compliance.read(topic, body, {})
    except shopify_compliance.ComplianceError:
        return
    assert request.kind == shopify_compliance.TOPICS[topic]
    assert request.dedupe_key.startswith(f"shopify:{topic}:")
    try:
        subject_of(KEY, customer_refs=request.customer_refs, orders=request.orders,
                   source_id="s" if request.kind == "shop_redact" else None)
    except SubjectError:
        pass


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.sets(st.sampled_from("abcdefgh")),
                       min_size=1))
def test_a_table_comes_before_every_table_it_references(graph):
    tables = set(graph) | {"tenants"}
    # Acyclic: a table references only tables later in the alphabet, and tenants.
    references = {t: {p for p in graph.get(t, set()) if p > t and p in tables} | {"tenants"}
                  for t in tables if t != "tenants"}
    references["tenants"] = set()
    ordered = _children_first(references)
    assert sorted(ordered) == sorted(tables) and ordered[-1] == "tenants"
    for child, parents in references.items():
        for parent in parents:
            assert ordered.index(child) < ordered.index(parent), (child, parent)
