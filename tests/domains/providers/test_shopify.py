import base64
import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from personal_data import personal_values
from provider_fixtures import shared_fixture_dir, shared_fixture_names
from skeldir.domains.ingestion.event import AttributionHints, EntryKind, RevenueEntry
from skeldir.domains.ingestion.provider import SignatureError, StitchRefs, UnprocessableEvent
from skeldir.domains.providers import shopify
from skeldir.domains.providers.shopify import ShopifyProvider

OWN_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shopify"
SECRET = b"test-shopify-client-secret"
provider = ShopifyProvider()


def signature(body: bytes, secret: bytes = SECRET) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def delivery_headers(topic: str, body: bytes, secret: bytes = SECRET, **extra: str) -> dict:
    return {"x-shopify-topic": topic, "x-shopify-hmac-sha256": signature(body, secret), **extra}


def topic_of(fixture_name: str) -> str:
    """orders_create__variant.json -> orders/create."""
    return fixture_name.split("__")[0].replace("_", "/", 1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def verified_delivery(body: bytes, topic: str):
    headers = delivery_headers(topic, body)
    provider.verify(body, headers, [SECRET])
    return provider.parse(body, headers)


def assert_nothing_personal_is_kept(fixture: dict, delivery) -> None:
    kept = "\n".join([repr(delivery), repr(delivery.event), delivery.dedupe_key,
                      orjson.dumps(delivery.redacted_payload).decode()])
    values = personal_values(fixture)
    leaked = sorted(value for value in values if value in kept)
    assert not leaked, f"personal values kept: {leaked}"


def assert_redacted_copy_parses_to_the_same_event(delivery, topic: str) -> None:
    redacted_body = orjson.dumps(delivery.redacted_payload)
    again = provider.parse(redacted_body, delivery_headers(topic, redacted_body))
    assert again.event == delivery.event
    assert again.redacted_payload == delivery.redacted_payload
    # The copy keeps no stitch reference: the edge stores those only as keyed digests.
    assert again.stitch == StitchRefs()


def sale(order_id: str, minor: int, currency: str, when: str) -> RevenueEntry:
    return RevenueEntry(f"order:{order_id}", EntryKind.SALE, minor, currency, at(when))


def refund(external_id: str, minor: int, currency: str, when: str) -> RevenueEntry:
    return RevenueEntry(external_id, EntryKind.REFUND, minor, currency, at(when))


# What each real, third-party payload must turn into.
EXPECTED_REAL = {
    "orders_create__dev_store_multicurrency_aud_shop_usd_presentment.json": dict(
        external_order_id="2998548365461",
        currency="AUD",
        total_minor=6033,
        presentment_currency="USD",
        presentment_total_minor=4585,
        ordered_at=at("2020-12-27T08:18:47+11:00"),
        updated_at=at("2020-12-27T08:18:48+11:00"),
        entries=(sale("2998548365461", 6033, "AUD", "2020-12-27T08:18:47+11:00"),),
        # The landing query is only a storefront password-bypass token.
        hints=AttributionHints(landing_path="/", source_name="web"),
        has_order_snapshot=True,
    ),
    "orders_paid__dev_store_draft_order.json": dict(
        external_order_id="5324830114101",
        currency="USD",
        total_minor=262995,
        presentment_currency="USD",
        presentment_total_minor=262995,
        ordered_at=at("2023-03-24T12:37:26-04:00"),
        updated_at=at("2023-03-24T12:37:27-04:00"),
        entries=(sale("5324830114101", 262995, "USD", "2023-03-24T12:37:26-04:00"),),
        hints=AttributionHints(source_name="shopify_draft_order"),
        has_order_snapshot=True,
    ),
    "orders_updated__rest_reference_partially_refunded_with_attribution.json": dict(
        external_order_id="450789469",
        currency="USD",
        total_minor=59894,
        presentment_currency="USD",
        presentment_total_minor=59894,
        ordered_at=at("2008-01-10T11:00:00-05:00"),
        updated_at=at("2025-04-02T11:30:48-05:00"),
        entries=(
            sale("450789469", 59894, "USD", "2008-01-10T11:00:00-05:00"),
            refund("refund:509562969:179259969", -20900, "USD", "2005-08-05T12:59:12-04:00"),
        ),
        # `source=abc` is not an attribution parameter we keep.
        hints=AttributionHints(
            landing_path="/", referring_domain="www.otherexample.com", source_name="web"
        ),
        has_order_snapshot=True,
    ),
    "refunds_create__rest_reference_two_line_items.json": dict(
        external_order_id="450789469",
        currency="USD",
        total_minor=0,
        presentment_currency=None,
        presentment_total_minor=None,
        ordered_at=at("2025-04-02T11:38:15-05:00"),
        updated_at=None,
        entries=(refund("refund:509562969:179259969", -20900, "USD", "2005-08-05T12:59:12-04:00"),),
        hints=AttributionHints(),
        has_order_snapshot=False,
    ),
}
EXPECTED_REAL_STITCH = {
    "orders_create__dev_store_multicurrency_aud_shop_usd_presentment.json": StitchRefs(
        checkout_token="0b2d7460446787c61f6f2bec332d6127",
        cart_token="75ea35352251e9eb2763191774ab3179",
        customer_ref="customer@example.com",
    ),
    # A draft order: its email is "" and it has no customer.
    "orders_paid__dev_store_draft_order.json": StitchRefs(
        checkout_token="2b9ba639fb81a1fb61a02be4c95459b5"),
    "orders_updated__rest_reference_partially_refunded_with_attribution.json": StitchRefs(
        checkout_token="bd5a8aa1ecd019dd3520ff791ee3a24c",
        cart_token="68778783ad298f1c80c3bafcddeea02f",
        customer_ref="bob.norman@mail.example.com",
    ),
    "refunds_create__rest_reference_two_line_items.json": StitchRefs(),
}
EXPECTED_REAL_DEDUPE_KEYS = {
    "orders_create__dev_store_multicurrency_aud_shop_usd_presentment.json":
        "orders/create:2998548365461",
    "orders_paid__dev_store_draft_order.json": "orders/paid:5324830114101",
    "orders_updated__rest_reference_partially_refunded_with_attribution.json":
        "orders/updated:450789469@2025-04-02T16:30:48+00:00",
    "refunds_create__rest_reference_two_line_items.json": "refunds/create:509562969",
}


@pytest.mark.parametrize("name", shared_fixture_names("shopify") or ["(shared folder missing)"])
def test_every_real_payload_verifies_parses_and_keeps_nothing_personal(name):
    body = (shared_fixture_dir("shopify") / name).read_bytes()
    topic = topic_of(name)
    delivery = verified_delivery(body, topic)
    assert delivery.topic == topic
    assert delivery.event.provider == "shopify" and delivery.event.topic == topic
    if name in EXPECTED_REAL:
        for field, expected in EXPECTED_REAL[name].items():
            assert getattr(delivery.event, field) == expected, field
        assert delivery.dedupe_key == EXPECTED_REAL_DEDUPE_KEYS[name]
        assert delivery.stitch == EXPECTED_REAL_STITCH[name]
    assert_nothing_personal_is_kept(json.loads(body), delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery, topic)


def test_the_expected_real_payloads_are_all_present():
    names = {path.name for path in shared_fixture_dir("shopify").glob("*.json")}
    assert set(EXPECTED_REAL) <= names


def test_real_attributed_payload_is_stored_with_scrubbed_urls():
    name = "orders_updated__rest_reference_partially_refunded_with_attribution.json"
    body = (shared_fixture_dir("shopify") / name).read_bytes()
    redacted = verified_delivery(body, "orders/updated").redacted_payload
    assert redacted["landing_site"] == "http://www.example.com/"
    assert redacted["referring_site"] == "www.otherexample.com"
    assert set(redacted) <= set(shopify.ORDER_SPEC)


def own_fixture(name: str) -> bytes:
    return (OWN_FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", sorted(path.name for path in OWN_FIXTURES.glob("*.json")))
def test_own_fixtures_keep_nothing_personal_and_reparse_the_same(name):
    body = own_fixture(name)
    delivery = verified_delivery(body, topic_of(name))
    assert_nothing_personal_is_kept(json.loads(body), delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery, topic_of(name))


def test_minimal_usd_order():
    delivery = verified_delivery(own_fixture("orders_create__minimal_usd.json"), "orders/create")
    event = delivery.event
    assert (event.external_order_id, event.currency, event.total_minor) == ("424242", "USD", 1050)
    assert event.ordered_at == at("2026-01-25T12:34:56+00:00")
    assert event.presentment_currency is None and event.presentment_total_minor is None
    assert event.entries == (sale("424242", 1050, "USD", "2026-01-25T12:34:56Z"),)
    assert event.hints == AttributionHints()
    assert delivery.dedupe_key == "orders/create:424242"


def test_order_with_utm_landing_site_and_gclid():
    body = own_fixture("orders_create__utm_landing_site_gclid.json")
    delivery = verified_delivery(body, "orders/create")
    assert delivery.event.currency == "EUR" and delivery.event.total_minor == 8490
    assert delivery.event.hints == AttributionHints(
        utm_source="google",
        utm_medium="cpc",
        utm_campaign="spring_sale",
        utm_term="fountain pen",
        click_ids=(("gclid", "Cj0KCQiA-test-click"),),
        landing_path="/products/fountain-pen",
        referring_domain="www.google.com",
        source_name="web",
    )
    assert delivery.redacted_payload["landing_site"] == (
        "/products/fountain-pen?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale"
        "&utm_term=fountain+pen&gclid=Cj0KCQiA-test-click"
    )
    assert "alex" not in orjson.dumps(delivery.redacted_payload).decode().lower()


def test_jpy_order_with_a_refund_keeps_only_successful_refund_transactions():
    body = own_fixture("orders_paid__jpy_partially_refunded.json")
    event = verified_delivery(body, "orders/paid").event
    assert (event.currency, event.total_minor) == ("JPY", 15800)
    assert (event.presentment_currency, event.presentment_total_minor) == ("JPY", 15800)
    assert event.entries == (
        sale("6660001", 15800, "JPY", "2026-03-03T10:00:00+09:00"),
        refund("refund:880001:990001", -3000, "JPY", "2026-03-04T18:29:30+09:00"),
    )
    assert event.hints == AttributionHints(source_name="pos")


def test_json_number_amounts_are_read_exactly():
    body = own_fixture("orders_updated__numeric_amounts.json")
    event = verified_delivery(body, "orders/updated").event
    assert (event.currency, event.total_minor) == ("KWD", 10500)
    # The transaction has no created_at, so the refund's own time stands in.
    assert event.entries[1] == refund("refund:31:32", -125, "KWD", "2026-01-26T07:59:00Z")


STITCH_FIXTURE = "orders_paid__stitch_refs_cart_attribute.json"
STITCH_ORDER = json.loads(own_fixture(STITCH_FIXTURE))
STITCH = StitchRefs(
    visitor_id="vis_8d2f6b1e-4c3a-4e5f-9b7d-0a1c2e3f4a5b",
    checkout_token="9f3c2b1a0e4d5c6b7a8f9e0d1c2b3a4f",
    cart_token="Z2NwLWV1cm9wZS13ZXN0MTowMUpGQUtFQ0FSVDAwNDI",
    customer_ref="casey.sample@example.invalid",
)


def test_stitch_refs_are_read_from_the_order():
    delivery = verified_delivery(own_fixture(STITCH_FIXTURE), "orders/paid")
    assert delivery.stitch == STITCH
    assert delivery.event.entries == (sale("5550042", 4200, "EUR", "2026-02-14T18:20:00+01:00"),)


def test_stitch_refs_are_never_shown_or_kept():
    delivery = verified_delivery(own_fixture(STITCH_FIXTURE), "orders/paid")
    shown = "\n".join([repr(delivery), repr(delivery.event), repr(delivery.stitch),
                       delivery.dedupe_key, orjson.dumps(delivery.redacted_payload).decode()])
    for value in (STITCH.visitor_id, STITCH.checkout_token, STITCH.cart_token,
                  STITCH.customer_ref, "casey"):
        assert value not in shown
    assert "StitchRefs(<visitor_id, checkout_token, cart_token, customer_ref>)" in repr(delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery, "orders/paid")


def test_hidden_cart_attribute_and_padded_values_are_read():
    delivery = parse({
        **STITCH_ORDER,
        "note_attributes": [{"name": "_skeldir_visitor_id", "value": "  vis_hidden\n"}],
        "checkout_token": " 9f3c2b1a0e4d5c6b7a8f9e0d1c2b3a4f ",
    })
    assert delivery.stitch.visitor_id == "vis_hidden"
    assert delivery.stitch.checkout_token == STITCH.checkout_token


def test_the_named_cart_attribute_wins_over_the_hidden_one():
    attributes = [{"name": "_skeldir_visitor_id", "value": "vis_hidden"},
                  {"name": "skeldir_visitor_id", "value": "vis_named"},
                  {"name": "skeldir_visitor_id", "value": "vis_repeated"}]
    assert parse({**STITCH_ORDER, "note_attributes": attributes}).stitch.visitor_id == "vis_named"


@pytest.mark.parametrize(
    ("change", "customer_ref"),
    [
        ({"email": ""}, "casey.sample@example.invalid"),
        ({"email": None, "contact_email": "contact@example.invalid"}, "contact@example.invalid"),
        ({"email": 7, "contact_email": None, "customer": {"email": "c@example.invalid"}},
         "c@example.invalid"),
        ({"email": None, "contact_email": None, "customer": None}, None),
        ({"email": None, "contact_email": None, "customer": "casey@example.invalid"}, None),
    ],
)
def test_customer_ref_falls_back_from_email_to_contact_email_to_the_customer(change, customer_ref):
    assert parse({**STITCH_ORDER, **change}).stitch.customer_ref == customer_ref


@pytest.mark.parametrize(
    ("customer", "customer_ref"),
    [
        ({"id": 4206822293653}, "shopify:customer:4206822293653"),
        ({"id": 4206822293653, "email": "c@example.invalid"}, "c@example.invalid"),
        ({"id": None}, None),
        ({"id": True}, None),
    ],
)
def test_an_order_without_an_email_names_its_customer_by_the_shopify_customer_id(
        customer, customer_ref):
    order = {**STITCH_ORDER, "email": None, "contact_email": None, "customer": customer}
    assert parse(order).stitch.customer_ref == customer_ref


def too_long(field: str) -> str:
    limit = {"visitor_id": 128, "checkout_token": 256, "cart_token": 256, "customer_ref": 320}
    return "x" * (limit[field] + 1)


def with_stitch_value(field: str, value) -> dict:
    if field == "visitor_id":
        return {**STITCH_ORDER, "note_attributes": [{"name": "skeldir_visitor_id", "value": value}]}
    key = {"customer_ref": "email"}.get(field, field)
    payload = {**STITCH_ORDER, key: value}
    if field == "customer_ref":
        payload.update(contact_email=None, customer=None)
    return payload


@pytest.mark.parametrize("field", ["visitor_id", "checkout_token", "cart_token", "customer_ref"])
@pytest.mark.parametrize("bad", [too_long, 42, True, ["vis"], {"id": "vis"}, "", "   ",
                                 "vis\x00id", "vis\nid", "vis\u200bid"])
def test_unusable_stitch_values_are_dropped_and_the_sale_stands(field, bad):
    value = bad(field) if callable(bad) else bad
    good = verified_delivery(own_fixture(STITCH_FIXTURE), "orders/paid")
    delivery = parse(with_stitch_value(field, value), topic="orders/paid")
    assert getattr(delivery.stitch, field) is None
    for other in {"visitor_id", "checkout_token", "cart_token", "customer_ref"} - {field}:
        assert getattr(delivery.stitch, other) == getattr(STITCH, other)
    assert delivery.event == good.event
    assert delivery.dedupe_key == good.dedupe_key


@pytest.mark.parametrize("field", ["visitor_id", "checkout_token", "cart_token", "customer_ref"])
def test_stitch_values_at_their_bound_are_read(field):
    value = too_long(field)[1:]
    assert getattr(parse(with_stitch_value(field, value)).stitch, field) == value


@pytest.mark.parametrize("attributes", [None, "skeldir_visitor_id=vis", {"name": "x"},
                                        [None, 3, {"name": 5, "value": "vis"}]])
def test_malformed_cart_attributes_give_no_visitor_and_no_error(attributes):
    delivery = parse({**STITCH_ORDER, "note_attributes": attributes})
    assert delivery.stitch.visitor_id is None


def test_refunds_carry_no_stitch_refs():
    body = own_fixture("refunds_create__minimal_usd.json")
    assert verified_delivery(body, "refunds/create").stitch == StitchRefs()


def test_refund_event_carries_only_refund_entries():
    delivery = verified_delivery(own_fixture("refunds_create__minimal_usd.json"), "refunds/create")
    event = delivery.event
    assert (event.external_order_id, event.currency, event.total_minor) == ("424242", "USD", 0)
    assert event.has_order_snapshot is False
    assert event.ordered_at == at("2026-01-27T15:00:00Z")
    assert event.entries == (refund("refund:900001:800001", -320, "USD", "2026-01-27T15:00:05Z"),)
    assert delivery.dedupe_key == "refunds/create:900001"


# --- verification ------------------------------------------------------------------------

BODY = own_fixture("orders_create__minimal_usd.json")


@pytest.mark.parametrize(
    "value", [None, "", "   ", "not base64!", "é" * 44, base64.b64encode(b"short").decode(),
              signature(BODY)[:-1]],
)
def test_missing_or_garbled_signature_header_is_rejected(value):
    headers = {"x-shopify-topic": "orders/create"}
    if value is not None:
        headers["x-shopify-hmac-sha256"] = value
    with pytest.raises(SignatureError):
        provider.verify(BODY, headers, [SECRET])


def test_events_unprefixed_header_is_checked_first():
    good, bad = signature(BODY), signature(BODY, b"someone-else")
    provider.verify(BODY, {"shopify-hmac-sha256": good, "x-shopify-hmac-sha256": bad}, [SECRET])
    with pytest.raises(SignatureError):
        provider.verify(BODY, {"shopify-hmac-sha256": bad, "x-shopify-hmac-sha256": good},
                        [SECRET])


# --- parsing -----------------------------------------------------------------------------


def parse(payload: dict | bytes, topic: str | None = "orders/create", **headers: str):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if topic is not None:
        headers["x-shopify-topic"] = topic
    return provider.parse(body, headers)


MINIMAL = json.loads(BODY)


def test_topic_is_normalised():
    assert parse(MINIMAL, topic=" Orders/Create ").topic == "orders/create"


def test_events_topic_header_is_accepted():
    delivery = parse(MINIMAL, topic=None, **{"shopify-topic": "orders/create"})
    assert delivery.topic == "orders/create"


def test_cancelled_orders_parse_like_other_order_topics():
    assert parse(MINIMAL, topic="orders/cancelled").event.entries == parse(MINIMAL).event.entries


@pytest.mark.parametrize("topic", ["products/create", "orders/delete", "customers/data_request"])
def test_unsupported_topic(topic):
    with pytest.raises(UnprocessableEvent, match="unsupported topic"):
        parse(MINIMAL, topic=topic)


def test_missing_topic():
    with pytest.raises(UnprocessableEvent, match="topic"):
        parse(MINIMAL, topic=None)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1, 2]", b'"order"', b"null", b"\xff\xfe{}", b'{"id": NaN}',
     b'{"id": 1, "note": "\\ud800"}', b"[" * 100_000, b'{"id": 1' + b"1" * 5000 + b"}"],
)
def test_malformed_json_is_unprocessable(body):
    with pytest.raises(UnprocessableEvent):
        parse(body)


def test_event_id_header_is_the_dedupe_key():
    delivery = parse(MINIMAL, **{"x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5"})
    assert delivery.dedupe_key == "event:98880550-7158-44d4-b7cd-2c97c8a091b5:orders/create"


def test_each_update_of_an_order_has_its_own_key_without_an_event_id():
    first = parse({**MINIMAL, "updated_at": "2026-01-25T13:00:00Z"}, topic="orders/updated")
    second = parse({**MINIMAL, "updated_at": "2026-01-25T14:00:00Z"}, topic="orders/updated")
    assert first.dedupe_key != second.dedupe_key


SECRET_LOOKING_VALUE = "alice@example.invalid"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"total_price": ["10.50"]}, "order.total_price"),
        ({"total_price": SECRET_LOOKING_VALUE}, "order.total_price"),
        ({"total_price": "10.505"}, "order.total_price"),
        ({"total_price": "1e3"}, "order.total_price"),
        ({"total_price": "92233720368547758.08"}, "order.total_price"),
        ({"total_price": None}, "order.total_price is missing"),
        ({"id": None}, "order.id is missing"),
        ({"id": True}, "order.id"),
        ({"id": -1}, "order.id"),
        ({"id": SECRET_LOOKING_VALUE}, "order.id"),
        ({"currency": "ZZZ"}, "order.currency"),
        ({"currency": SECRET_LOOKING_VALUE}, "order.currency"),
        ({"currency": None}, "order.currency"),
        ({"created_at": None}, "order.created_at is missing"),
        ({"created_at": "2026-01-25T12:34:56"}, "order.created_at"),
        ({"created_at": SECRET_LOOKING_VALUE}, "order.created_at"),
        ({"landing_site": {"url": SECRET_LOOKING_VALUE}}, "order.landing_site"),
        ({"refunds": {"id": 1}}, "order.refunds"),
        ({"total_price_set": {"shop_money": {"amount": "1.00", "currency_code": "EUR"}}},
         "order.currency"),
        ({"refunds": [{"id": 1, "transactions": [
            {"id": 2, "kind": "refund", "status": "success", "amount": "-1.00",
             "currency": "USD", "created_at": "2026-01-25T12:34:56Z"}]}]},
         r"order.refunds\[0\].transactions\[0\].amount"),
    ],
)
def test_wrong_types_are_unprocessable_with_a_reason_free_of_payload_values(change, reason):
    payload = {**MINIMAL, **change}
    with pytest.raises(UnprocessableEvent, match=reason) as raised:
        parse(payload)
    message = str(raised.value)
    assert SECRET_LOOKING_VALUE not in message
    for value in change.values():
        if isinstance(value, str):
            assert value not in message
    assert raised.value.__cause__ is None


def test_refund_without_any_transaction_has_no_currency():
    with pytest.raises(UnprocessableEvent, match="currency"):
        parse({"id": 1, "order_id": 2, "created_at": "2026-01-25T12:34:56Z"},
              topic="refunds/create")
