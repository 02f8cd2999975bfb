import base64
import copy
import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from personal_data import personal_values
from provider_fixtures import shared_fixture_dir, shared_fixture_names
from skeldir.base.money import format_minor
from skeldir.domains.ingestion.event import AttributionHints, EntryKind, RevenueEntry
from skeldir.domains.ingestion.provider import SignatureError, StitchRefs, UnprocessableEvent
from skeldir.domains.providers import woocommerce
from skeldir.domains.providers.woocommerce import (
    WooCommerceProvider,
    is_ping,
    wordpress_signing_key,
)

OWN_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "woocommerce"
SECRET = b"test-woocommerce-webhook-secret"
DELIVERY_ID = "6f1d3c9a52e84b0c9d7e1f2a3b4c5d6e"
provider = WooCommerceProvider()

# Personal keys of the WooCommerce order shape, beyond the shared sets.
WOO_PERSONAL_KEYS = {"address_1", "address_2", "postcode", "customer_ip_address",
                     "customer_user_agent", "customer_note", "order_key", "payment_url",
                     "cart_hash", "transaction_id", "code"}
WOO_PERSONAL_OBJECTS = {"billing", "shipping"}
# meta_data entries whose value is about the buyer or their browser.
WOO_PERSONAL_META = {"_wc_order_attribution_user_agent", "_shipping_phone", "_stripe_customer_id",
                     "_customer_ip_country", "_payment_method_id", "_stripe_source_id",
                     "_billing_vat_number", "_skeldir_visitor_id", "_skeldir_cart_token"}


def woo_personal_values(node, inside_personal: bool = False) -> set[str]:
    found = personal_values(node)
    if isinstance(node, dict):
        if node.get("key") in WOO_PERSONAL_META:
            found |= _text(node.get("value"))
        for key, value in node.items():
            personal = inside_personal or key in WOO_PERSONAL_OBJECTS
            if isinstance(value, (dict, list)):
                found |= woo_personal_values(value, personal)
            elif personal or key in WOO_PERSONAL_KEYS:
                found |= _text(value)
    elif isinstance(node, list):
        for item in node:
            found |= woo_personal_values(item, inside_personal)
    return found


def _text(value) -> set[str]:
    if value is None or isinstance(value, bool) or len(str(value).strip()) < 3:
        return set()
    return {str(value)}


def signature(body: bytes, secret: bytes = SECRET) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def delivery_headers(topic: str, body: bytes, secret: bytes = SECRET, **extra: str) -> dict:
    return {"x-wc-webhook-topic": topic, "x-wc-webhook-signature": signature(body, secret),
            "x-wc-webhook-resource": "order", "x-wc-webhook-event": topic.split(".")[-1],
            "x-wc-webhook-source": "https://shop.example/", "x-wc-webhook-id": "12", **extra}


def topic_of(fixture_name: str) -> str:
    """order.created__variant.json -> order.created."""
    return fixture_name.split("__")[0]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def verified_delivery(body: bytes, topic: str, **extra: str):
    headers = delivery_headers(topic, body, **extra)
    provider.verify(body, headers, [SECRET])
    return provider.parse(body, headers)


def assert_nothing_personal_is_kept(fixture: dict, delivery) -> None:
    kept = "\n".join([repr(delivery), repr(delivery.event), delivery.dedupe_key,
                      orjson.dumps(delivery.redacted_payload).decode()])
    leaked = sorted(value for value in woo_personal_values(fixture) if value in kept)
    assert not leaked, f"personal values kept: {leaked}"


def assert_only_attribution_meta_is_kept(delivery) -> None:
    keys = {entry["key"] for entry in delivery.redacted_payload.get("meta_data", [])}
    assert keys <= set(woocommerce._META_VALUE_RULES)
    assert "_wc_order_attribution_user_agent" not in keys
    assert all(set(entry) <= {"key", "value"} for entry in delivery.redacted_payload["meta_data"])
    assert set(delivery.redacted_payload) <= set(woocommerce.ORDER_SPEC)


def assert_redacted_copy_parses_to_the_same_event(delivery, topic: str) -> None:
    redacted_body = orjson.dumps(delivery.redacted_payload)
    again = provider.parse(redacted_body, delivery_headers(topic, redacted_body))
    assert again.event == delivery.event
    assert again.redacted_payload == delivery.redacted_payload
    # The copy keeps no stitch reference: the edge stores those only as keyed digests.
    assert again.stitch == StitchRefs()


def sale(order_id: str, minor: int, currency: str, when: str) -> RevenueEntry:
    return RevenueEntry(f"sale:{order_id}", EntryKind.SALE, minor, currency, at(when))


def refund(refund_id: str, minor: int, currency: str, when: str) -> RevenueEntry:
    return RevenueEntry(f"refund:{refund_id}", EntryKind.REFUND, minor, currency, at(when))


# What each real, third-party payload must turn into.
EXPECTED_REAL = {
    "order.created__rest_api_docs_v3_example.json": {
        "external_order_id": "727",
        "currency": "USD",
        "total_minor": 2935,
        "presentment_currency": None,
        "presentment_total_minor": None,
        "ordered_at": at("2017-03-22T19:28:02Z"),
        "updated_at": at("2017-03-22T19:28:08Z"),
        "entries": (sale("727", 2935, "USD", "2017-03-22T19:28:02Z"),),
        "hints": AttributionHints(),
        "has_order_snapshot": True,
        "cancelled_at": None,
    },
    "order.created__wc_ios_order_attribution_referral.json": {
        "external_order_id": "459",
        "currency": "USD",
        # Gift cards paid 24.00 of the 28.00 basket; `total` is what the order charged.
        "total_minor": 400,
        "presentment_currency": None,
        "presentment_total_minor": None,
        "ordered_at": at("2023-03-29T03:21:20Z"),
        "updated_at": at("2023-03-29T03:23:02Z"),
        "entries": (sale("459", 400, "USD", "2023-03-29T03:21:20Z"),),
        "hints": AttributionHints(
            utm_source="woocommerce.com",
            utm_medium="referral",
            utm_campaign="sale",
            utm_content="/",
            landing_path="/shop/",
            referring_domain="woocommerce.com",
            source_name="referral",
        ),
        "has_order_snapshot": True,
        "cancelled_at": None,
    },
    "order.updated__wc_ios_partially_refunded.json": {
        "external_order_id": "324",
        "currency": "USD",
        "total_minor": 30445,
        "presentment_currency": None,
        "presentment_total_minor": None,
        "ordered_at": at("2019-06-06T17:17:55Z"),
        "updated_at": at("2019-06-06T17:18:38Z"),
        "entries": (
            sale("324", 30445, "USD", "2019-06-06T17:17:55Z"),
            refund("549", -1620, "USD", "2019-06-06T17:18:38Z"),
            refund("547", -810, "USD", "2019-06-06T17:18:38Z"),
        ),
        "hints": AttributionHints(),
        "has_order_snapshot": True,
        "cancelled_at": None,
    },
}
# None of these shops set Skeldir's meta, so the billing email is their only reference.
EXPECTED_REAL_CUSTOMER_REFS = {
    "order.created__rest_api_docs_v3_example.json": "john.doe@example.com",
    "order.created__wc_ios_order_attribution_referral.json":
        "your.email+fakedata99085@example.com",
    "order.updated__wc_ios_partially_refunded.json": "customer+pamela-nguyen-orders@example.com",
}


def content_key(topic: str, order_id: str, body: bytes) -> str:
    return f"{topic}:{order_id}:sha256:{hashlib.sha256(body).hexdigest()}"


@pytest.mark.parametrize("name", shared_fixture_names("woocommerce") or ["(shared folder missing)"])
def test_every_real_payload_verifies_parses_and_keeps_nothing_personal(name):
    body = (shared_fixture_dir("woocommerce") / name).read_bytes()
    topic = topic_of(name)
    delivery = verified_delivery(body, topic)
    assert delivery.topic == topic
    assert delivery.event.provider == "woocommerce" and delivery.event.topic == topic
    if name in EXPECTED_REAL:
        for field, expected in EXPECTED_REAL[name].items():
            assert getattr(delivery.event, field) == expected, field
        assert delivery.dedupe_key == content_key(topic, delivery.event.external_order_id, body)
        assert delivery.stitch == StitchRefs(customer_ref=EXPECTED_REAL_CUSTOMER_REFS[name])
    with_id = verified_delivery(body, topic, **{"x-wc-webhook-delivery-id": DELIVERY_ID})
    assert with_id.dedupe_key == delivery.dedupe_key
    assert with_id.event == delivery.event
    assert_nothing_personal_is_kept(json.loads(body), delivery)
    assert_only_attribution_meta_is_kept(delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery, topic)


def test_the_expected_real_payloads_are_all_present():
    names = {path.name for path in shared_fixture_dir("woocommerce").glob("*.json")}
    assert set(EXPECTED_REAL) <= names


def test_real_attributed_payload_keeps_only_scrubbed_attribution_meta():
    name = "order.created__wc_ios_order_attribution_referral.json"
    body = (shared_fixture_dir("woocommerce") / name).read_bytes()
    redacted = verified_delivery(body, "order.created").redacted_payload
    meta = {entry["key"]: entry["value"] for entry in redacted["meta_data"]}
    assert meta == {
        "_wc_order_attribution_referrer": "woocommerce.com",
        "_wc_order_attribution_session_entry": "https://ddev.site/shop/",
        "_wc_order_attribution_source_type": "referral",
        "_wc_order_attribution_utm_content": "/",
        "_wc_order_attribution_utm_medium": "referral",
        "_wc_order_attribution_utm_source": "woocommerce.com",
        "_wc_order_attribution_utm_campaign": "sale",
    }
    for dropped in ("billing", "shipping", "line_items", "_links", "customer_ip_address",
                    "customer_user_agent", "gift_cards", "payment_url", "order_key"):
        assert dropped not in redacted


def test_real_refunds_net_against_the_gross_sale():
    body = (shared_fixture_dir("woocommerce") / "order.updated__wc_ios_partially_refunded.json")
    event = verified_delivery(body.read_bytes(), "order.updated").event
    assert sum(entry.amount_minor for entry in event.entries) == 30445 - 1620 - 810
    # The refund reasons are free text a merchant typed; they are not kept.
    assert "Sold out" not in orjson.dumps(
        verified_delivery(body.read_bytes(), "order.updated").redacted_payload).decode()


# --- own fixtures --------------------------------------------------------------------------


def own_fixture(name: str) -> bytes:
    return (OWN_FIXTURES / name).read_bytes()


OWN_ORDER_FIXTURES = sorted(path.name for path in OWN_FIXTURES.glob("order.*.json"))


@pytest.mark.parametrize("name", OWN_ORDER_FIXTURES)
def test_own_fixtures_keep_nothing_personal_and_reparse_the_same(name):
    body = own_fixture(name)
    delivery = verified_delivery(body, topic_of(name))
    assert_nothing_personal_is_kept(json.loads(body), delivery)
    assert_only_attribution_meta_is_kept(delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery, topic_of(name))


def test_pending_order_carries_no_sale():
    body = own_fixture("order.created__pending_bacs.json")
    delivery = verified_delivery(body, "order.created")
    event = delivery.event
    assert (event.external_order_id, event.currency, event.total_minor) == ("9101", "EUR", 4200)
    assert event.entries == ()
    assert event.ordered_at == at("2026-02-10T09:05:00Z")
    assert event.cancelled_at is None
    # "(direct)" is Sourcebuster's placeholder, not a source; the entry URL's query is personal.
    assert event.hints == AttributionHints(landing_path="/", source_name="typein")
    assert delivery.dedupe_key == content_key("order.created", "9101", body)


def test_cancelled_order_carries_no_sale_and_its_cancellation_time():
    body = own_fixture("order.updated__cancelled_unpaid.json")
    event = verified_delivery(body, "order.updated").event
    assert (event.currency, event.total_minor, event.entries) == ("GBP", 1550, ())
    assert event.cancelled_at == at("2026-02-11T19:30:12Z")
    assert event.hints == AttributionHints(utm_source="bing", utm_medium="organic",
                                           referring_domain="www.bing.com", source_name="organic")


def test_utm_attribution_meta_and_a_click_id_in_the_entry_url():
    body = own_fixture("order.created__utm_attribution_gclid.json")
    delivery = verified_delivery(body, "order.created")
    event = delivery.event
    assert (event.external_order_id, event.currency, event.total_minor) == ("9103", "EUR", 8490)
    assert event.entries == (sale("9103", 8490, "EUR", "2026-03-01T14:45:10Z"),)
    assert event.hints == AttributionHints(
        utm_source="google",
        utm_medium="cpc",
        utm_campaign="spring_sale",
        utm_term="fountain pen",
        click_ids=(("gclid", "Cj0KCQiA-fake-click-0003"),),
        landing_path="/products/fountain-pen/",
        referring_domain="www.google.com",
        source_name="utm",
    )
    meta = {entry["key"]: entry["value"] for entry in delivery.redacted_payload["meta_data"]}
    assert meta["_wc_order_attribution_session_entry"] == (
        "https://shop.example/products/fountain-pen/?utm_source=google&utm_medium=cpc"
        "&utm_campaign=spring_sale&gclid=Cj0KCQiA-fake-click-0003"
    )
    assert meta["_wc_order_attribution_referrer"] == "www.google.com"
    assert "alex" not in orjson.dumps(delivery.redacted_payload).decode().lower()


# --- stitch references -------------------------------------------------------------------

STITCH_FIXTURE = "order.updated__stitch_meta_billing_email.json"
STITCH_ORDER = json.loads(own_fixture(STITCH_FIXTURE))
STITCH = StitchRefs(
    visitor_id="vis_6c1a9e3f-7b2d-4f8e-a0c5-2d4f6a8b0c1e",
    cart_token="wc_cart_5f7a9c1e3b2d4f6a",
    customer_ref="casey.sample@example.invalid",
)
STITCH_FIELDS = ("visitor_id", "cart_token", "customer_ref")
STITCH_LIMITS = {"visitor_id": 128, "cart_token": 256, "customer_ref": 320}
STITCH_META = {"visitor_id": "_skeldir_visitor_id", "cart_token": "_skeldir_cart_token"}


def test_stitch_refs_are_read_from_order_meta_and_the_billing_email():
    delivery = verified_delivery(own_fixture(STITCH_FIXTURE), "order.updated")
    assert delivery.stitch == STITCH
    assert delivery.event.entries == (sale("9177", 4200, "EUR", "2026-02-14T17:20:00Z"),)
    assert delivery.event.hints == AttributionHints(
        utm_source="newsletter", utm_medium="email", source_name="utm")


def test_stitch_refs_are_never_shown_or_kept():
    delivery = verified_delivery(own_fixture(STITCH_FIXTURE), "order.updated")
    shown = "\n".join([repr(delivery), repr(delivery.event), repr(delivery.stitch),
                       delivery.dedupe_key, orjson.dumps(delivery.redacted_payload).decode()])
    for field in STITCH_FIELDS:
        assert getattr(STITCH, field) not in shown
    assert "casey" not in shown.lower() and "_skeldir" not in shown
    assert "StitchRefs(<visitor_id, cart_token, customer_ref>)" in repr(delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery, "order.updated")


@pytest.mark.parametrize(
    ("customer_id", "customer_ref"),
    [(12, "woocommerce:customer:12"), (0, None), (None, None), ("12", "woocommerce:customer:12")],
)
def test_an_order_without_a_billing_email_names_its_customer_by_the_customer_id(
        customer_id, customer_ref):
    payload = copy.deepcopy(STITCH_ORDER)
    payload["billing"]["email"] = ""
    payload["customer_id"] = customer_id
    assert parse(payload, "order.updated").stitch.customer_ref == customer_ref
    payload["billing"]["email"] = "billing@example.invalid"
    assert parse(payload, "order.updated").stitch.customer_ref == "billing@example.invalid"


def with_stitch_value(field: str, value) -> dict:
    payload = copy.deepcopy(STITCH_ORDER)
    if field == "customer_ref":
        payload["billing"]["email"] = value
        # Else the customer id would name the buyer in the email's place.
        payload["customer_id"] = 0
    else:
        for entry in payload["meta_data"]:
            if entry["key"] == STITCH_META[field]:
                entry["value"] = value
    return payload


@pytest.mark.parametrize("field", STITCH_FIELDS)
@pytest.mark.parametrize("bad", ["too long", 42, True, ["vis"], {"id": "vis"}, "", "   ",
                                 "vis\x00id", "vis\nid", "vis\u200bid"])
def test_unusable_stitch_values_are_dropped_and_the_sale_stands(field, bad):
    value = "x" * (STITCH_LIMITS[field] + 1) if bad == "too long" else bad
    good = verified_delivery(own_fixture(STITCH_FIXTURE), "order.updated")
    delivery = parse(with_stitch_value(field, value), topic="order.updated")
    assert getattr(delivery.stitch, field) is None
    for other in set(STITCH_FIELDS) - {field}:
        assert getattr(delivery.stitch, other) == getattr(STITCH, other)
    assert delivery.stitch.checkout_token is None
    assert delivery.event == good.event


@pytest.mark.parametrize("field", STITCH_FIELDS)
def test_stitch_values_are_stripped_and_read_up_to_their_bound(field):
    value = "x" * STITCH_LIMITS[field]
    assert getattr(parse(with_stitch_value(field, f"  {value}\n")).stitch, field) == value


def test_the_first_visitor_id_meta_entry_wins():
    payload = copy.deepcopy(STITCH_ORDER)
    payload["meta_data"].append({"id": 1799, "key": "_skeldir_visitor_id", "value": "vis_later"})
    assert parse(payload).stitch.visitor_id == STITCH.visitor_id


@pytest.mark.parametrize("billing", [None, "casey.sample@example.invalid", [], {"email": None}])
def test_a_guest_without_a_billing_email_gives_no_customer_ref(billing):
    guest = {**STITCH_ORDER, "billing": billing, "customer_id": 0}
    assert parse(guest).stitch.customer_ref is None


# --- ping --------------------------------------------------------------------------------

PING = json.loads(own_fixture("ping__new_webhook.json"))
PING_BODY = PING["body"].encode()
PING_HEADERS = {name.lower(): value for name, value in PING["headers"].items()}


def test_the_ping_of_a_new_webhook_is_recognised():
    assert is_ping(PING_BODY, PING_HEADERS)
    assert is_ping(PING_BODY, PING["headers"])
    assert is_ping(b"webhook_id=9", {})


@pytest.mark.parametrize(
    ("body", "extra_headers"),
    [
        (PING_BODY, {"x-wc-webhook-signature": signature(PING_BODY)}),
        (PING_BODY, {"X-WC-Webhook-Topic": "order.created"}),
        (b"webhook_id=", {}),
        (b"webhook_id=abc", {}),
        (b"webhook_id=42&x=1", {}),
        (b"webhook_id=42\n", {}),
        (b" webhook_id=42", {}),
        (b"webhook_id=\xd9\xa4\xd9\xa2", {}),
        (b"webhook_id=" + b"1" * 60, {}),
        (b'{"webhook_id": 42}', {}),
        (b"", {}),
        (own_fixture("order.created__pending_bacs.json"), {}),
    ],
)
def test_anything_else_is_not_a_ping(body, extra_headers):
    assert not is_ping(body, {**PING_HEADERS, **extra_headers})


@given(st.integers(min_value=0, max_value=10**19))
def test_every_webhook_id_ping_is_recognised(webhook_id):
    assert is_ping(f"webhook_id={webhook_id}".encode(), PING_HEADERS)


# --- verification ------------------------------------------------------------------------

BODY = own_fixture("order.created__utm_attribution_gclid.json")


@pytest.mark.parametrize(
    "value", [None, "", "   ", "not base64!", "é" * 44, base64.b64encode(b"short").decode(),
              signature(BODY)[:-1], signature(BODY).encode().hex(),
              base64.urlsafe_b64encode(hmac.new(SECRET, BODY, hashlib.sha256).digest()).decode()
              .replace("=", "")],
)
def test_missing_or_garbled_signature_header_is_rejected(value):
    headers = {"x-wc-webhook-topic": "order.created"}
    if value is not None:
        headers["x-wc-webhook-signature"] = value
    with pytest.raises(SignatureError):
        provider.verify(BODY, headers, [SECRET])


@pytest.mark.parametrize(
    ("stored", "signing_key"),
    [
        (b"plain-secret", b"plain-secret"),
        (b"a&amp;b", b"a&b"),
        (b"&lt;&gt;&quot;&#039;&#x27;", b"<>\"''"),
        (b"&#0039;&#X27;&#x0026;&#38;&#34;&#60;&#62;", b"''&&\"<>"),
        # One pass: an entity revealed by decoding stays as it is.
        (b"&amp;lt;", b"&lt;"),
        # Named entities beyond the five HTML special characters are left alone.
        (b"&eacute;&nbsp;&", b"&eacute;&nbsp;&"),
    ],
)
def test_the_signing_key_is_the_secret_with_html_entities_decoded(stored, signing_key):
    assert wordpress_signing_key(stored) == signing_key
    headers = delivery_headers("order.created", BODY, secret=signing_key)
    provider.verify(BODY, headers, [stored])


def test_a_secret_signed_without_decoding_is_not_accepted_for_an_encoded_secret():
    headers = delivery_headers("order.created", BODY, secret=b"a&amp;b")
    with pytest.raises(SignatureError):
        provider.verify(BODY, headers, [b"a&amp;b"])


# --- parsing -----------------------------------------------------------------------------


def parse(payload: dict | bytes, topic: str | None = "order.created", **headers: str):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if topic is not None:
        headers["x-wc-webhook-topic"] = topic
    return provider.parse(body, headers)


MINIMAL = {
    "id": 31,
    "status": "processing",
    "currency": "USD",
    "total": "10.50",
    "date_created_gmt": "2026-01-25T12:34:56",
    "date_modified_gmt": "2026-01-25T12:40:00",
    "refunds": [],
    "meta_data": [],
}


def test_minimal_order():
    delivery = parse(MINIMAL)
    assert delivery.event.entries == (sale("31", 1050, "USD", "2026-01-25T12:34:56Z"),)
    assert delivery.event.hints == AttributionHints()
    assert delivery.dedupe_key == content_key("order.created", "31", json.dumps(MINIMAL).encode())


def test_topic_is_normalised():
    assert parse(MINIMAL, topic=" Order.Updated ").topic == "order.updated"


@pytest.mark.parametrize("topic", ["order.deleted", "order.restored", "product.created",
                                   "action.woocommerce_order_refunded", "orders/create"])
def test_unsupported_topic(topic):
    with pytest.raises(UnprocessableEvent, match="unsupported topic"):
        parse(MINIMAL, topic=topic)


def test_deleted_order_body_is_unsupported_before_it_is_read():
    with pytest.raises(UnprocessableEvent, match="unsupported topic"):
        parse({"id": 31}, topic="order.deleted")


def test_missing_topic():
    with pytest.raises(UnprocessableEvent, match="topic"):
        parse(MINIMAL, topic=None)


@pytest.mark.parametrize("status", ["processing", "completed", "on-hold", "refunded"])
def test_paid_statuses_carry_the_sale(status):
    entries = parse({**MINIMAL, "status": status}).event.entries
    assert entries == (sale("31", 1050, "USD", "2026-01-25T12:34:56Z"),)


@pytest.mark.parametrize("status", ["pending", "failed", "cancelled", "checkout-draft", "trash"])
def test_unpaid_statuses_carry_no_sale(status):
    assert parse({**MINIMAL, "status": status}).event.entries == ()


def test_only_a_cancelled_order_has_a_cancellation_time():
    assert parse({**MINIMAL, "status": "failed"}).event.cancelled_at is None
    cancelled = parse({**MINIMAL, "status": "cancelled"}).event
    assert cancelled.cancelled_at == at("2026-01-25T12:40:00Z")
    undated = {key: value for key, value in MINIMAL.items() if key != "date_modified_gmt"}
    assert parse({**undated, "status": "cancelled"}).event.cancelled_at == at(
        "2026-01-25T12:34:56Z")


def test_the_same_sale_has_the_same_id_in_every_event_of_the_order():
    created = parse({**MINIMAL, "status": "on-hold"}, topic="order.created").event
    completed = parse({**MINIMAL, "status": "completed", "date_modified_gmt": "2026-01-26T08:00:00",
                       "refunds": [{"id": 77, "reason": "", "total": "-1.50"}]},
                      topic="order.updated").event
    assert created.entries[0] == completed.entries[0]
    assert completed.entries[1] == refund("77", -150, "USD", "2026-01-26T08:00:00Z")


def test_refunds_of_an_undated_order_take_its_creation_time():
    undated = {key: value for key, value in MINIMAL.items() if key != "date_modified_gmt"}
    event = parse({**undated, "refunds": [{"id": 5, "total": "-0.00"}]}).event
    assert event.updated_at is None
    assert event.entries[1] == refund("5", 0, "USD", "2026-01-25T12:34:56Z")


def test_date_created_with_an_offset_stands_in_for_date_created_gmt():
    local = {key: value for key, value in MINIMAL.items() if key != "date_created_gmt"}
    event = parse({**local, "date_created": "2026-01-25T13:34:56+01:00"}).event
    assert event.ordered_at == at("2026-01-25T12:34:56Z")


def test_gmt_dates_with_an_explicit_offset_are_read_as_such():
    event = parse({**MINIMAL, "date_created_gmt": "2026-01-25T12:34:56+00:00"}).event
    assert event.ordered_at == at("2026-01-25T12:34:56Z")


def test_the_dedupe_key_is_what_the_delivery_says_not_its_delivery_id():
    # WooCommerce's delivery id hashes the webhook id and the current second only.
    delivery = parse(MINIMAL, **{"x-wc-webhook-delivery-id": DELIVERY_ID})
    retried = parse(MINIMAL, **{"x-wc-webhook-delivery-id": "a-later-second"})
    assert retried.dedupe_key == delivery.dedupe_key
    completed = {**MINIMAL, "status": "completed"}  # the same second, the same delivery id
    update = parse(completed, **{"x-wc-webhook-delivery-id": DELIVERY_ID})
    assert update.dedupe_key != delivery.dedupe_key


def test_each_update_of_an_order_has_its_own_key_without_a_delivery_id():
    first = parse({**MINIMAL, "date_modified_gmt": "2026-01-25T13:00:00"}, topic="order.updated")
    second = parse({**MINIMAL, "date_modified_gmt": "2026-01-25T14:00:00"}, topic="order.updated")
    assert first.dedupe_key != second.dedupe_key


def meta(**values: str) -> list[dict]:
    return [{"id": index, "key": f"_wc_order_attribution_{key}", "value": value}
            for index, (key, value) in enumerate(values.items(), start=1)]


def test_explicit_utm_meta_wins_over_the_entry_url():
    entry = "https://shop.example/?utm_source=newsletter&utm_campaign=march&fbclid=IwAR-fake"
    event = parse({**MINIMAL, "meta_data": meta(session_entry=entry, utm_source="facebook")}).event
    assert event.hints == AttributionHints(utm_source="facebook", utm_campaign="march",
                                           click_ids=(("fbclid", "IwAR-fake"),), landing_path="/")


def test_the_first_meta_entry_of_a_key_wins():
    entries = meta(utm_source="") + meta(utm_source="late")
    payload = {**MINIMAL, "meta_data": entries}
    assert parse(payload).event.hints == AttributionHints()
    redacted = parse(payload).redacted_payload
    assert parse(redacted).event == parse(payload).event


def test_meta_entries_that_are_not_attribution_are_ignored_whatever_their_shape():
    odd = [{"id": 1, "key": ["not", "a", "key"], "value": 1}, {"id": 2, "value": "x"},
           {"id": 3, "key": "_wc_order_attribution_session_pages", "value": ["x"]}]
    delivery = parse({**MINIMAL, "meta_data": odd})
    assert delivery.event.hints == AttributionHints()
    assert delivery.redacted_payload["meta_data"] == []


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1, 2]", b'"order"', b"null", b"\xff\xfe{}", b'{"id": NaN}',
     b'{"id": 1, "customer_note": "\\ud800"}', b"[" * 100_000, PING_BODY],
)
def test_malformed_json_is_unprocessable(body):
    with pytest.raises(UnprocessableEvent):
        parse(body)


SECRET_LOOKING_VALUE = "alice@example.invalid"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"total": ["10.50"]}, "order.total"),
        ({"total": SECRET_LOOKING_VALUE}, "order.total"),
        ({"total": "10.505"}, "order.total"),
        ({"total": "1e3"}, "order.total"),
        ({"total": "-10.50"}, "order.total is negative"),
        ({"total": "92233720368547758.08"}, "order.total"),
        ({"total": None}, "order.total is missing"),
        ({"id": None}, "order.id is missing"),
        ({"id": True}, "order.id"),
        ({"id": -1}, "order.id"),
        ({"id": SECRET_LOOKING_VALUE}, "order.id"),
        ({"status": None}, "order.status is missing"),
        ({"status": ""}, "order.status is missing"),
        ({"status": {"name": SECRET_LOOKING_VALUE}}, "order.status"),
        ({"currency": "usd"}, "order.currency"),
        ({"currency": SECRET_LOOKING_VALUE}, "order.currency"),
        ({"currency": None}, "order.currency"),
        ({"date_created_gmt": None}, "order.date_created_gmt is missing"),
        ({"date_created_gmt": None, "date_created": "2026-01-25T13:34:56"},
         "order.date_created has no UTC offset"),
        ({"date_created_gmt": SECRET_LOOKING_VALUE}, "order.date_created_gmt"),
        ({"date_created_gmt": "2026-01-25T12:34:56" + "0" * 80}, "order.date_created_gmt"),
        ({"date_modified_gmt": SECRET_LOOKING_VALUE}, "order.date_modified_gmt"),
        ({"date_modified_gmt": 1769344800}, "order.date_modified_gmt"),
        ({"refunds": {"id": 1}}, "order.refunds"),
        ({"refunds": [{"id": 1, "total": "1.00"}]}, r"order.refunds\[0\].total is positive"),
        ({"refunds": [{"id": 1, "total": SECRET_LOOKING_VALUE}]}, r"order.refunds\[0\].total"),
        ({"refunds": [{"id": 1}]}, r"order.refunds\[0\].total is missing"),
        ({"refunds": [{"total": "-1.00"}]}, r"order.refunds\[0\].id is missing"),
        ({"meta_data": "x"}, "order.meta_data"),
        ({"meta_data": [{"key": "_wc_order_attribution_referrer",
                         "value": {"url": SECRET_LOOKING_VALUE}}]},
         r"order.meta_data\[0\].value"),
    ],
)
def test_wrong_types_are_unprocessable_with_a_reason_free_of_payload_values(change, reason):
    with pytest.raises(UnprocessableEvent, match=reason) as raised:
        parse({**MINIMAL, **change})
    message = str(raised.value)
    assert SECRET_LOOKING_VALUE not in message
    for value in change.values():
        if isinstance(value, str) and value:
            assert value not in message
    assert raised.value.__cause__ is None


# --- laws --------------------------------------------------------------------------------

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD", "CLF"])


@given(
    currency=CURRENCIES,
    total=st.integers(min_value=0, max_value=2**53),
    refunds=st.lists(st.integers(min_value=0, max_value=2**40), max_size=4),
    as_number=st.booleans(),
)
def test_amounts_round_trip_exactly_and_refunds_net_the_sale(currency, total, refunds, as_number):
    text = format_minor(total, currency)
    payload = {
        **MINIMAL,
        "currency": currency,
        "total": text,
        "refunds": [{"id": 100 + index, "total": "-" + format_minor(amount, currency)}
                    for index, amount in enumerate(refunds)],
    }
    body = json.dumps(payload).encode()
    if as_number:
        # A plugin may send the total as a JSON number; it is read exactly too.
        body = body.replace(f'"total": "{text}"'.encode(), f'"total": {text}'.encode(), 1)
    delivery = parse(body)
    event = delivery.event
    assert event.total_minor == total
    assert [entry.amount_minor for entry in event.entries] == [total] + [-a for a in refunds]
    assert sum(entry.amount_minor for entry in event.entries) == total - sum(refunds)
    assert len({entry.external_id for entry in event.entries}) == len(event.entries)
    assert parse(orjson.dumps(delivery.redacted_payload)).event == event


META_KEYS = st.sampled_from(
    [*sorted(woocommerce._META_VALUE_RULES), "_wc_order_attribution_user_agent", "_billing_phone"])
# Control characters are left out: privacy.scrub_url and landing_hints strip them differently
# ("\x1b\x850" keeps a different path once scrubbed), a shared-helper matter.
META_VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40) | (
    st.sampled_from(["(none)", "(direct)", "https://a.example/p?gclid=x&utm_term=y&email=z"]))


@given(st.dictionaries(META_KEYS, META_VALUES))
def test_redacted_attribution_meta_reparses_to_the_same_hints(values):
    payload = {**MINIMAL, "meta_data": [{"id": i, "key": k, "value": v}
                                        for i, (k, v) in enumerate(values.items())]}
    delivery = parse(payload)
    assert parse(orjson.dumps(delivery.redacted_payload)).event == delivery.event
    kept = {entry["key"] for entry in delivery.redacted_payload["meta_data"]}
    assert "_wc_order_attribution_user_agent" not in kept and "_billing_phone" not in kept
