import copy
import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personal_data import personal_values
from provider_fixtures import shared_fixture_dir, shared_fixture_names
from skeldir.base import money
from skeldir.domains.ingestion.event import AttributionHints, EntryKind, RevenueEntry
from skeldir.domains.ingestion.privacy import CLICK_ID_KEYS, UTM_KEYS
from skeldir.domains.ingestion.provider import (
    SignatureError,
    StitchRefs,
    UnprocessableEvent,
    VerificationContext,
)
from skeldir.domains.providers.stripe import StripeProvider
from skeldir.domains.providers.stripe_amounts import iso_minor_units, stripe_exponent

OWN_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stripe"
SECRET = b"whsec_test_skeldir_stripe_endpoint_secret"
OLD_SECRET = b"whsec_test_skeldir_stripe_secret_before_roll"
NOW = 1_769_000_000
provider = StripeProvider()

# Stripe objects carry personal data under keys the shared helper does not know.
STRIPE_PERSONAL_KEYS = {
    "receipt_email", "customer_email", "client_secret", "client_reference_id", "customer",
    "receipt_url", "fingerprint", "last4", "description", "name", "email", "phone", "line1",
    "line2", "city", "postal_code", "state",
}
STRIPE_PERSONAL_OBJECTS = {"billing_details", "shipping", "shipping_details", "customer_details",
                           "payment_method_details", "source", "address"}
ATTRIBUTION_KEYS = {key.lower() for key in UTM_KEYS + CLICK_ID_KEYS}


def stripe_personal_values(node, inside: bool = False) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "metadata" and isinstance(value, dict):
                # Merchants put anything in metadata; only attribution fields may be kept.
                found |= {text for name, text in value.items()
                          if name.lower() not in ATTRIBUTION_KEYS and _long(text)}
            elif isinstance(value, (dict, list)):
                found |= stripe_personal_values(value, inside or key in STRIPE_PERSONAL_OBJECTS)
            elif (inside or key in STRIPE_PERSONAL_KEYS) and _long(value):
                found.add(str(value))
    elif isinstance(node, list):
        for item in node:
            found |= stripe_personal_values(item, inside)
    return found


def _long(value) -> bool:
    return value is not None and not isinstance(value, bool) and len(str(value).strip()) >= 3


def sign(body: bytes, secret: bytes = SECRET, timestamp: int = NOW) -> str:
    return hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secret: bytes = SECRET, timestamp: int = NOW) -> dict:
    return {"stripe-signature": f"t={timestamp},v1={sign(body, secret, timestamp)}"}


def context(now: float = NOW, **settings) -> VerificationContext:
    return VerificationContext(source_settings=settings, now=now)


def verified_delivery(body: bytes):
    headers = signature_header(body)
    provider.verify(body, headers, [SECRET], context())
    return provider.parse(body, headers)


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def sale(order_id: str, minor: int, currency: str, unix: int) -> RevenueEntry:
    return RevenueEntry(f"sale:{order_id}", EntryKind.SALE, minor, currency, at(unix))


def refund(external_id: str, minor: int, currency: str, unix: int) -> RevenueEntry:
    return RevenueEntry(external_id, EntryKind.REFUND, minor, currency, at(unix))


def assert_nothing_personal_is_kept(fixture: dict, delivery) -> None:
    kept = "\n".join([repr(delivery), repr(delivery.event), delivery.dedupe_key,
                      orjson.dumps(delivery.redacted_payload).decode()])
    values = personal_values(fixture) | stripe_personal_values(fixture)
    leaked = sorted(value for value in values if value in kept)
    assert not leaked, f"personal values kept: {leaked}"


def assert_redacted_copy_parses_to_the_same_event(delivery) -> None:
    again = provider.parse(orjson.dumps(delivery.redacted_payload), {})
    assert again.event == delivery.event
    assert again.dedupe_key == delivery.dedupe_key
    assert again.redacted_payload == delivery.redacted_payload
    # The copy keeps no stitch reference: the edge stores those only as keyed digests.
    assert again.stitch == StitchRefs()


CLI_PI = "pi_000000000000000000000000"
EXPECTED_REAL = {
    "payment_intent.succeeded__stripe_cli_usd.json": {
        "external_order_id": CLI_PI, "currency": "USD", "total_minor": 2000,
        "ordered_at": at(1648320032), "updated_at": at(1648320033),
        "entries": (sale(CLI_PI, 2000, "USD", 1648320032),), "has_order_snapshot": True,
    },
    "payment_intent.succeeded__lago_eur_metadata.json": {
        "external_order_id": "pi_3RTkpYQ8iJWBZFaM1LBHNo0J", "currency": "EUR", "total_minor": 4620,
        "ordered_at": at(1748441984), "updated_at": at(1748441984),
        "entries": (sale("pi_3RTkpYQ8iJWBZFaM1LBHNo0J", 4620, "EUR", 1748441984),),
        "has_order_snapshot": True,
    },
    "charge.succeeded__stripe_cli_usd.json": {
        "external_order_id": CLI_PI, "currency": "USD", "total_minor": 2000,
        "ordered_at": at(1648320032), "updated_at": at(1648320032),
        "entries": (sale(CLI_PI, 2000, "USD", 1648320032),), "has_order_snapshot": True,
    },
    # `captured: false`: an authorisation, not yet money taken; there is no PaymentIntent.
    "charge.succeeded__lago_eur_api_docs_charge.json": {
        "external_order_id": "ch_3L7z2aDu4p87RxPw290ERIXH", "currency": "EUR", "total_minor": 100,
        "ordered_at": at(1655712943), "updated_at": at(1655712943), "entries": (),
        "has_order_snapshot": True,
    },
    "charge.refunded__stripe_cli_full_refund.json": {
        "external_order_id": "ch_000000000000000000000000", "currency": "USD", "total_minor": 0,
        "ordered_at": at(1648319947), "updated_at": at(1648319949),
        "entries": (refund("refund:re_000000000000000000000000", -100, "USD", 1648319949),),
        "has_order_snapshot": False,
    },
    # This session object predates `created`, so the event's time stands in.
    "checkout.session.completed__stripe_cli_payment_mode.json": {
        "external_order_id": CLI_PI, "currency": "USD", "total_minor": 3000,
        "ordered_at": at(1648319959), "updated_at": at(1648319959),
        "entries": (sale(CLI_PI, 3000, "USD", 1648319959),), "has_order_snapshot": True,
    },
}
EXPECTED_REAL_DEDUPE_KEYS = {
    "payment_intent.succeeded__lago_eur_metadata.json": "event:evt_3RTkpYQ8iJWBZFaM1G1JtOIT",
    "charge.succeeded__lago_eur_api_docs_charge.json": "event:evt_1LCflrDu4p87RxPw3rxrRLSc",
}

# The Checkout Session names its buyer by email; one PaymentIntent only by its Stripe customer;
# the other real payloads carry no stitch reference.
EXPECTED_REAL_STITCH = {
    "checkout.session.completed__stripe_cli_payment_mode.json":
        StitchRefs(customer_ref="stripe@example.com"),
    "payment_intent.succeeded__lago_eur_metadata.json":
        StitchRefs(customer_ref="stripe:customer:cus_SOXv8CncjHqSEv"),
}


@pytest.mark.parametrize("name", shared_fixture_names("stripe") or ["(shared folder missing)"])
def test_every_real_payload_verifies_parses_and_keeps_nothing_personal(name):
    body = (shared_fixture_dir("stripe") / name).read_bytes()
    delivery = verified_delivery(body)
    topic = name.split("__")[0]
    assert delivery.topic == topic
    assert delivery.event.provider == "stripe" and delivery.event.topic == topic
    for field, expected in EXPECTED_REAL[name].items():
        assert getattr(delivery.event, field) == expected, field
    assert delivery.event.hints == AttributionHints()
    assert delivery.event.presentment_currency is None
    assert delivery.event.cancelled_at is None
    assert delivery.dedupe_key == EXPECTED_REAL_DEDUPE_KEYS.get(
        name, "event:evt_000000000000000000000000")
    assert delivery.stitch == EXPECTED_REAL_STITCH.get(name, StitchRefs())
    assert_nothing_personal_is_kept(json.loads(body), delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery)


def test_the_expected_real_payloads_are_all_present():
    names = {path.name for path in shared_fixture_dir("stripe").glob("*.json")}
    assert set(EXPECTED_REAL) <= names


def test_one_payment_intent_is_one_sale_whichever_event_arrives():
    folder = shared_fixture_dir("stripe")
    sales = {
        verified_delivery((folder / name).read_bytes()).event.entries[0].external_id
        for name in ("payment_intent.succeeded__stripe_cli_usd.json",
                     "charge.succeeded__stripe_cli_usd.json",
                     "checkout.session.completed__stripe_cli_payment_mode.json")
    }
    assert sales == {f"sale:{CLI_PI}"}


def test_real_redacted_copy_keeps_only_what_the_parser_reads():
    body = (shared_fixture_dir("stripe") / "payment_intent.succeeded__lago_eur_metadata.json")
    redacted = verified_delivery(body.read_bytes()).redacted_payload
    assert redacted["data"]["object"] == {
        "id": "pi_3RTkpYQ8iJWBZFaM1LBHNo0J", "object": "payment_intent", "amount": 4620,
        "amount_received": 4620, "currency": "eur", "created": 1748441984, "metadata": {},
    }
    assert set(redacted) == {"id", "object", "type", "created", "data"}


# --- the repository's own payloads -------------------------------------------------------


def own_fixture(name: str) -> bytes:
    return (OWN_FIXTURES / name).read_bytes()


def own_payload(name: str) -> dict:
    return json.loads(own_fixture(name))


PARSEABLE_OWN = sorted(path.name for path in OWN_FIXTURES.glob("*.json")
                       if "thin_event" not in path.name)


@pytest.mark.parametrize("name", PARSEABLE_OWN)
def test_own_fixtures_keep_nothing_personal_and_reparse_the_same(name):
    body = own_fixture(name)
    delivery = verified_delivery(body)
    assert delivery.topic == name.split("__")[0]
    assert_nothing_personal_is_kept(json.loads(body), delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery)


def test_payment_intent_with_utm_metadata_and_gclid():
    delivery = verified_delivery(own_fixture("payment_intent.succeeded__utm_metadata_gclid.json"))
    event = delivery.event
    assert (event.external_order_id, event.currency, event.total_minor) == (
        "pi_3SkelTestUtm0001Pi00001", "EUR", 8490)
    assert event.entries == (sale("pi_3SkelTestUtm0001Pi00001", 8490, "EUR", 1769347190),)
    assert (event.ordered_at, event.updated_at) == (at(1769347190), at(1769347200))
    # Metadata fields win over the landing URL's own utm_source; its fbclid is kept.
    assert event.hints == AttributionHints(
        utm_source="google", utm_medium="cpc", utm_campaign="spring_sale",
        utm_term="fountain pen",
        click_ids=(("fbclid", "IwAR-test-fb"), ("gclid", "Cj0KCQiA-test-click")),
        landing_path="/products/fountain-pen", referring_domain="www.google.com",
    )
    assert delivery.dedupe_key == "event:evt_3SkelTestUtm0001Evt0001"
    assert delivery.redacted_payload["data"]["object"]["metadata"] == {
        "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring_sale",
        "utm_term": "fountain pen", "gclid": "Cj0KCQiA-test-click",
        "landing_url": "https://pens.example/products/fountain-pen"
                       "?utm_source=newsletter&fbclid=IwAR-test-fb",
        "referrer": "www.google.com",
    }
    assert "alex" not in orjson.dumps(delivery.redacted_payload).decode().lower()


def test_landing_page_key_and_no_referrer():
    payload = own_payload("payment_intent.succeeded__utm_metadata_gclid.json")
    metadata = payload["data"]["object"]["metadata"]
    metadata["landing_page"] = metadata.pop("landing_url")
    del metadata["referrer"]
    hints = parse(payload).event.hints
    assert hints.landing_path == "/products/fountain-pen" and hints.referring_domain is None


def test_partially_refunded_charge_books_each_refund_object():
    delivery = verified_delivery(own_fixture("charge.refunded__partial_two_refunds.json"))
    event = delivery.event
    assert event.has_order_snapshot is False
    assert (event.external_order_id, event.currency, event.total_minor) == (
        "pi_3SkelTestRefund02Pi0002", "USD", 0)
    assert event.entries == (
        refund("refund:re_3SkelTestRefund02Re0002", -500, "USD", 1769533199),
        refund("refund:re_3SkelTestRefund02Re0001", -1000, "USD", 1769446800),
    )
    assert (event.ordered_at, event.updated_at) == (at(1769346000), at(1769533200))
    assert event.hints == AttributionHints(utm_source="newsletter")


def test_failed_and_cancelled_refunds_are_not_booked():
    payload = own_payload("charge.refunded__partial_two_refunds.json")
    listed = payload["data"]["object"]["refunds"]["data"]
    listed[0]["status"] = "failed"
    listed[1]["status"] = "canceled"
    listed.append({**listed[1], "id": "re_pending", "status": "pending"})
    entries = parse(payload).event.entries
    assert [entry.external_id for entry in entries] == ["refund:re_pending"]


def test_jpy_payment_is_already_in_yen():
    event = verified_delivery(own_fixture("payment_intent.succeeded__jpy.json")).event
    assert (event.currency, event.total_minor) == ("JPY", 15800)
    assert event.entries == (sale("pi_3SkelTestJpy03Pi000003", 15800, "JPY", 1772503200),)
    assert event.hints == AttributionHints()


def test_refund_without_the_list_books_the_step_from_previous_attributes():
    name = "charge.refunded__no_refund_list_previous_attributes.json"
    event = verified_delivery(own_fixture(name)).event
    assert event.external_order_id == "pi_3SkelTestUpto04Pi00004"
    assert event.entries == (
        refund("refund:ch_3SkelTestUpto04Ch00004:upto:3000", -2000, "EUR", 1769619600),
    )
    assert event.has_order_snapshot is False


def test_refund_without_the_list_needs_previous_attributes():
    payload = own_payload("charge.refunded__no_refund_list_previous_attributes.json")
    del payload["data"]["previous_attributes"]
    with pytest.raises(UnprocessableEvent, match="previous_attributes.amount_refunded"):
        parse(payload)


def test_refund_level_that_went_down_is_unprocessable_and_no_step_books_nothing():
    payload = own_payload("charge.refunded__no_refund_list_previous_attributes.json")
    payload["data"]["previous_attributes"]["amount_refunded"] = 3500
    with pytest.raises(UnprocessableEvent, match="below its previous value"):
        parse(payload)
    payload["data"]["previous_attributes"]["amount_refunded"] = 3000
    assert parse(payload).event.entries == ()


def refund_level_event(charge_id: str, previous: int, level: int, created: int) -> dict:
    return {
        "id": f"evt_level_{level}", "object": "event", "type": "charge.refunded",
        "created": created,
        "data": {
            "object": {"id": charge_id, "object": "charge", "amount": 10**9, "currency": "usd",
                       "amount_refunded": level, "created": 1, "paid": True,
                       "status": "succeeded"},
            "previous_attributes": {"amount_refunded": previous},
        },
    }


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(1, 10**6), min_size=1, max_size=8), seed=st.integers())
def test_refund_steps_sum_to_the_refunded_amount_in_any_order_with_redeliveries(steps, seed):
    levels = [sum(steps[:index + 1]) for index in range(len(steps))]
    events = [refund_level_event("ch_law", previous, level, 100 + index)
              for index, (previous, level) in enumerate(zip([0, *levels], levels))]
    arrivals = events + random.Random(seed).sample(events, k=len(events) // 2)
    random.Random(seed).shuffle(arrivals)
    booked: dict[str, int] = {}
    for payload in arrivals:
        for entry in parse(payload).event.entries:
            booked.setdefault(entry.external_id, entry.amount_minor)
    assert sum(booked.values()) == -levels[-1]


def test_thin_event_is_unprocessable():
    body = own_fixture("v1.billing.meter.error_report_triggered__thin_event.json")
    provider.verify(body, signature_header(body), [SECRET], context())
    with pytest.raises(UnprocessableEvent, match="thin events"):
        provider.parse(body, {})


def test_unpaid_checkout_session_is_an_order_without_a_sale():
    body = own_fixture("checkout.session.completed__unpaid_async_payment.json")
    event = verified_delivery(body).event
    assert (event.external_order_id, event.currency, event.total_minor) == (
        "pi_3SkelTestUnpaid06Pi0006", "EUR", 4200)
    assert event.entries == ()
    assert event.ordered_at == at(1769702300)
    assert event.hints == AttributionHints(
        utm_source="instagram", utm_medium="social", click_ids=(("ttclid", "tt-test-click-06"),))


def test_session_without_a_payment_intent_is_its_own_order():
    payload = own_payload("checkout.session.completed__unpaid_async_payment.json")
    session = payload["data"]["object"]
    session.update(payment_intent=None, payment_status="paid")
    event = parse(payload).event
    assert event.external_order_id == session["id"]
    assert event.entries == (sale(session["id"], 4200, "EUR", 1769702300),)


def test_no_payment_required_session_books_no_sale():
    payload = own_payload("checkout.session.completed__unpaid_async_payment.json")
    payload["data"]["object"].update(payment_status="no_payment_required", amount_total=0)
    assert parse(payload).event.entries == ()


# --- stitch references -------------------------------------------------------------------

STITCH_FIXTURE = "payment_intent.succeeded__stitch_metadata_receipt_email.json"
STITCH = StitchRefs(
    visitor_id="vis_3b9e7c2d-1f4a-4d6b-8e0c-5a7b9c1d3e5f",
    checkout_token="chk_7e1d9c3b5a2f4e6d8c0b",
    cart_token="cart_2a4c6e8f0b1d3f5a7c9e",
    customer_ref="casey.receipts@example.invalid",
)
STITCH_FIELDS = ("visitor_id", "checkout_token", "cart_token", "customer_ref")
# Where each reference is read in a PaymentIntent (below data.object).
STITCH_PATHS = {"visitor_id": ("metadata", "skeldir_visitor_id"),
                "checkout_token": ("metadata", "checkout_token"),
                "cart_token": ("metadata", "cart_token"), "customer_ref": ("receipt_email",)}
STITCH_LIMITS = {"visitor_id": 128, "checkout_token": 256, "cart_token": 256, "customer_ref": 320}


def test_stitch_refs_are_read_from_metadata_and_the_receipt_email():
    delivery = verified_delivery(own_fixture(STITCH_FIXTURE))
    assert delivery.stitch == STITCH
    assert delivery.event.entries == (sale("pi_3SkelTestStitch01Pi0001", 4200, "EUR", 1771089600),)
    assert delivery.event.hints == AttributionHints(utm_source="newsletter", utm_medium="email")


def test_stitch_refs_are_never_shown_or_kept():
    delivery = verified_delivery(own_fixture(STITCH_FIXTURE))
    shown = "\n".join([repr(delivery), repr(delivery.event), repr(delivery.stitch),
                       delivery.dedupe_key, orjson.dumps(delivery.redacted_payload).decode()])
    for field in STITCH_FIELDS:
        assert getattr(STITCH, field) not in shown
    assert "casey" not in shown.lower()
    assert "StitchRefs(<visitor_id, checkout_token, cart_token, customer_ref>)" in repr(delivery)
    assert delivery.redacted_payload["data"]["object"]["metadata"] == {
        "utm_source": "newsletter", "utm_medium": "email"}
    assert_redacted_copy_parses_to_the_same_event(delivery)


def test_checkout_session_buyer_is_its_customer_details_email():
    body = own_fixture("checkout.session.completed__unpaid_async_payment.json")
    assert verified_delivery(body).stitch == StitchRefs(
        customer_ref="robin.beispiel@example.invalid")


def test_charge_buyer_is_its_receipt_email_else_its_billing_email():
    billing = {"email": "billing@example.invalid", "name": "Casey Sample"}
    assert parse(charge(billing_details=billing)).stitch.customer_ref == "billing@example.invalid"
    with_receipt = charge(billing_details=billing, receipt_email="receipt@example.invalid")
    assert parse(with_receipt).stitch.customer_ref == "receipt@example.invalid"
    assert parse(charge(billing_details="billing@example.invalid")).stitch == StitchRefs()


@pytest.mark.parametrize(
    ("customer", "customer_ref"),
    [("cus_SOXv8CncjHqSEv", "stripe:customer:cus_SOXv8CncjHqSEv"),
     ({"id": "cus_SOXv8CncjHqSEv", "object": "customer"}, "stripe:customer:cus_SOXv8CncjHqSEv"),
     (None, None), ("", None)],
)
def test_a_charge_without_an_email_names_its_customer_by_the_stripe_customer_id(
        customer, customer_ref):
    assert parse(charge(customer=customer)).stitch.customer_ref == customer_ref
    with_email = charge(customer=customer, receipt_email="receipt@example.invalid")
    assert parse(with_email).stitch.customer_ref == "receipt@example.invalid"


def test_refunded_charge_keeps_its_stitch_refs():
    body = own_fixture("charge.refunded__partial_two_refunds.json")
    assert verified_delivery(body).stitch == StitchRefs(
        customer_ref="jordan.receipts@example.invalid")


def test_the_checkout_session_id_is_not_a_checkout_token():
    payload = own_payload("checkout.session.completed__unpaid_async_payment.json")
    assert parse(payload).stitch.checkout_token is None


def with_stitch_value(field: str, value) -> dict:
    payload = own_payload(STITCH_FIXTURE)
    *parents, key = STITCH_PATHS[field]
    node = payload["data"]["object"]
    for parent in parents:
        node = node[parent]
    node[key] = value
    if field == "customer_ref":
        # Else the Stripe customer id would name the buyer in the email's place.
        payload["data"]["object"]["customer"] = None
    return payload


@pytest.mark.parametrize("field", STITCH_FIELDS)
@pytest.mark.parametrize("bad", ["too long", 42, True, ["vis"], {"id": "vis"}, "", "   ",
                                 "vis\x00id", "vis\nid", "vis\u200bid"])
def test_unusable_stitch_values_are_dropped_and_the_sale_stands(field, bad):
    value = "x" * (STITCH_LIMITS[field] + 1) if bad == "too long" else bad
    good = verified_delivery(own_fixture(STITCH_FIXTURE))
    delivery = parse(with_stitch_value(field, value))
    assert getattr(delivery.stitch, field) is None
    for other in set(STITCH_FIELDS) - {field}:
        assert getattr(delivery.stitch, other) == getattr(STITCH, other)
    assert delivery.event == good.event
    assert delivery.dedupe_key == good.dedupe_key


@pytest.mark.parametrize("field", STITCH_FIELDS)
def test_stitch_values_are_stripped_and_read_up_to_their_bound(field):
    value = "x" * STITCH_LIMITS[field]
    assert getattr(parse(with_stitch_value(field, f"  {value}\n")).stitch, field) == value


# --- charges and amounts -----------------------------------------------------------------

CHARGE = {
    "id": "evt_charge", "object": "event", "type": "charge.succeeded", "created": 1769000000,
    "data": {"object": {
        "id": "ch_test", "object": "charge", "amount": 2000, "amount_captured": 2000,
        "captured": True, "paid": True, "status": "succeeded", "currency": "usd",
        "created": 1768999990, "payment_intent": "pi_test", "metadata": {},
    }},
}


def charge(**changes) -> dict:
    payload = copy.deepcopy(CHARGE)
    payload["data"]["object"].update(changes)
    return payload


def parse(payload: dict | bytes):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return provider.parse(body, {})


@pytest.mark.parametrize(
    "changes", [{"paid": False}, {"status": "failed"}, {"status": "pending"}, {"captured": False}]
)
def test_charge_that_took_no_money_books_no_sale(changes):
    assert parse(charge(**changes)).event.entries == ()


def test_partially_captured_charge_books_what_was_captured():
    assert parse(charge(amount_captured=1500)).event.entries == (
        sale("pi_test", 1500, "USD", 1768999990),)


def test_charge_from_before_amount_captured_books_its_amount():
    payload = charge()
    del payload["data"]["object"]["amount_captured"]
    assert parse(payload).event.entries[0].amount_minor == 2000


@pytest.mark.parametrize(
    ("currency", "amount", "expected_currency", "expected"),
    [
        ("usd", 1050, "USD", 1050),
        ("jpy", 500, "JPY", 500),
        ("kwd", 5120, "KWD", 5120),   # three decimals at Stripe and in ISO
        ("isk", 50000, "ISK", 500),   # two decimals at Stripe, none in ISO
        ("ugx", 380000, "UGX", 3800),  # likewise, though Stripe also lists it as zero-decimal
        ("mga", 5000, "MGA", 500000),  # no decimals at Stripe, two in ISO
        ("huf", 10045, "HUF", 10045),  # zero-decimal only for Stripe payouts
        ("twd", 80045, "TWD", 80045),
    ],
)
def test_stripe_amounts_become_iso_minor_units(currency, amount, expected_currency, expected):
    event = parse(charge(currency=currency, amount=amount, amount_captured=amount)).event
    assert (event.currency, event.total_minor) == (expected_currency, expected)
    assert event.entries[0].amount_minor == expected


def test_fractional_isk_cannot_be_booked_exactly():
    with pytest.raises(UnprocessableEvent, match="charge.amount is not an exact amount"):
        parse(charge(currency="isk", amount=4010, amount_captured=4000))


@settings(max_examples=200, deadline=None)
@given(amount=st.integers(0, 10**15), currency=st.sampled_from(sorted(money.MINOR_UNIT_EXPONENTS)))
def test_conversion_keeps_the_value_exactly_or_refuses(amount, currency):
    stripe_places, iso_places = stripe_exponent(currency), money.exponent(currency)
    try:
        minor = iso_minor_units(amount, currency)
    except money.MoneyError:
        assert amount % 10 ** (stripe_places - iso_places) != 0
    else:
        assert minor * 10**stripe_places == amount * 10**iso_places


# --- verification ------------------------------------------------------------------------

BODY = own_fixture("payment_intent.succeeded__jpy.json")


def test_secret_is_used_whole_with_its_prefix():
    unprefixed = SECRET.removeprefix(b"whsec_")
    with pytest.raises(SignatureError):
        provider.verify(BODY, signature_header(BODY, unprefixed), [SECRET], context())


def test_the_timestamp_is_signed():
    forged = f"t={NOW + 1},v1={sign(BODY)}"
    with pytest.raises(SignatureError):
        provider.verify(BODY, {"stripe-signature": forged}, [SECRET], context())


GOOD = sign(BODY)


@pytest.mark.parametrize(
    "value",
    [
        None, "", "   ", f"v1={GOOD}", f"t=,v1={GOOD}", f"t=abc,v1={GOOD}", f"t=-{NOW},v1={GOOD}",
        f"t={NOW}.5,v1={GOOD}", f"t=1{'0' * 20},v1={GOOD}", f"t={NOW},t={NOW},v1={GOOD}",
        f"t={NOW}", f"t={NOW},v0={GOOD}", f"t={NOW},v2={GOOD}", f"t={NOW},v1={GOOD.upper()}",
        f"t={NOW},v1={GOOD[:-1]}", f"t={NOW},v1={GOOD}00", f"t={NOW},v1=é{GOOD[1:]}",
        f"t=١٧٦٩٠٠٠٠٠٠,v1={GOOD}", f"t={NOW};v1={GOOD}", f"t={NOW},v1={GOOD}," + "x" * 5000,
    ],
)
def test_missing_or_garbled_signature_header_is_rejected(value):
    headers = {} if value is None else {"stripe-signature": value}
    with pytest.raises(SignatureError):
        provider.verify(BODY, headers, [SECRET], context())


def test_v0_and_malformed_v1_entries_are_ignored_beside_a_good_one():
    header = f"t={NOW},v0={'0' * 64},v1=zz,v1={GOOD},v9=x,junk"
    provider.verify(BODY, {"stripe-signature": header}, [SECRET], context())


def test_spaces_between_elements_are_tolerated():
    provider.verify(BODY, {"stripe-signature": f"t={NOW}, v1={GOOD}"}, [SECRET], context())


@pytest.mark.parametrize("offset", [-301, 301, -10**6, 10**6])
def test_stale_and_future_timestamps_are_rejected(offset):
    with pytest.raises(SignatureError, match="tolerance"):
        provider.verify(BODY, signature_header(BODY), [SECRET], context(now=NOW + offset))


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_the_default_tolerance_are_accepted(offset):
    provider.verify(BODY, signature_header(BODY), [SECRET], context(now=NOW + offset))


def test_tolerance_is_configurable_per_source():
    headers = signature_header(BODY)
    provider.verify(BODY, headers, [SECRET], context(now=NOW + 900, tolerance_seconds=900))
    with pytest.raises(SignatureError):
        provider.verify(BODY, headers, [SECRET], context(now=NOW + 31, tolerance_seconds=30))


@pytest.mark.parametrize("tolerance", [-1, "300", None, True, float("nan"), float("inf")])
def test_invalid_tolerance_setting_rejects_rather_than_guessing(tolerance):
    with pytest.raises(SignatureError, match="tolerance_seconds"):
        provider.verify(BODY, signature_header(BODY), [SECRET],
                        context(tolerance_seconds=tolerance))


def test_without_a_context_the_real_clock_is_used():
    now = int(time.time())
    provider.verify(BODY, signature_header(BODY, timestamp=now), [SECRET])
    with pytest.raises(SignatureError):
        provider.verify(BODY, signature_header(BODY, timestamp=now - 3600), [SECRET])


def test_any_of_several_v1_values_may_match_any_secret():
    header = f"t={NOW},v1={sign(BODY, b'whsec_unknown')},v1={sign(BODY, OLD_SECRET)}"
    provider.verify(BODY, {"stripe-signature": header}, [SECRET, OLD_SECRET], context())
    with pytest.raises(SignatureError):
        provider.verify(BODY, {"stripe-signature": header}, [SECRET], context())


# --- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["customer.created", "payment_intent.created",
                                        "charge.failed", "invoice.paid"])
def test_unsupported_event_type(event_type):
    with pytest.raises(UnprocessableEvent, match=f"unsupported event type '{event_type}'"):
        parse({**CHARGE, "type": event_type})


def test_unsupported_type_that_could_carry_anything_is_not_echoed():
    with pytest.raises(UnprocessableEvent) as raised:
        parse({**CHARGE, "type": SECRET_LOOKING_VALUE})
    assert SECRET_LOOKING_VALUE not in str(raised.value)


def test_object_that_does_not_match_the_event_type():
    with pytest.raises(UnprocessableEvent, match='payment_intent.object is not "payment_intent"'):
        parse({**CHARGE, "type": "payment_intent.succeeded"})


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1, 2]", b"null", b"\xff\xfe{}", b'{"id": NaN}', b"[" * 100_000],
)
def test_malformed_json_is_unprocessable(body):
    with pytest.raises(UnprocessableEvent):
        parse(body)


SECRET_LOOKING_VALUE = "alice@example.invalid"


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("object", "list", 'event.object is not "event"'),
        ("id", None, "event.id is missing"),
        ("id", SECRET_LOOKING_VALUE, "event.id is not a evt_ id"),
        ("id", "ch_wrong_kind", "event.id is not a evt_ id"),
        ("type", None, "event.type is missing"),
        ("created", None, "event.created is missing"),
        ("created", "2026-01-25T12:00:00Z", "event.created is not a unix timestamp"),
        ("created", True, "event.created is not a unix timestamp"),
        ("created", -1, "event.created is not a unix timestamp"),
        ("data", None, "event.data is missing"),
        ("data", [SECRET_LOOKING_VALUE], "event.data is not an object"),
        ("data.object", None, "event.data.object is missing"),
        ("data.object.id", 42, "charge.id is not a ch_/py_ id"),
        ("data.object.payment_intent", {"id": "pi_x"}, "charge.payment_intent is not a pi_ id"),
        ("data.object.payment_intent", SECRET_LOOKING_VALUE, "charge.payment_intent"),
        ("data.object.currency", None, "charge.currency is missing"),
        ("data.object.currency", "zzz", "charge.currency is not a known currency code"),
        ("data.object.currency", SECRET_LOOKING_VALUE, "charge.currency is not a known"),
        ("data.object.currency", 840, "charge.currency is not a known"),
        ("data.object.amount", "20.00", "charge.amount is not an integer"),
        ("data.object.amount", 20.5, "charge.amount is not an integer"),
        ("data.object.amount", -2000, "charge.amount is negative"),
        ("data.object.amount", 2**63, "charge.amount is out of range"),
        ("data.object.amount", None, "charge.amount is missing"),
        ("data.object.amount_captured", "2000", "charge.amount_captured"),
        ("data.object.paid", "yes", "charge.paid is not a boolean"),
        ("data.object.created", SECRET_LOOKING_VALUE, "charge.created is not a unix timestamp"),
        ("data.object.metadata", [SECRET_LOOKING_VALUE], "charge.metadata is not an object"),
    ],
)
def test_wrong_types_are_unprocessable_with_a_reason_free_of_payload_values(path, value, reason):
    payload = copy.deepcopy(CHARGE)
    *parents, key = path.split(".")
    target = payload
    for parent in parents:
        target = target[parent]
    target[key] = value
    with pytest.raises(UnprocessableEvent, match=reason.replace("(", r"\(")) as raised:
        parse(payload)
    message = str(raised.value)
    assert SECRET_LOOKING_VALUE not in message
    if isinstance(value, str):
        assert value not in message
    assert raised.value.__cause__ is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"refunds": [1]}, "charge.refunds is not an object"),
        ({"refunds": {"data": [1]}}, r"charge.refunds.data is not a list of objects"),
        ({"refunds": {"data": [{"object": "refund", "id": "re_1", "amount": 5,
                                "currency": "usd", "created": 1, "status": 7}]}},
         r"charge.refunds.data\[0\].status is not a string"),
        ({"refunds": {"data": [{"object": "refund", "id": SECRET_LOOKING_VALUE, "amount": 5,
                                "currency": "usd", "created": 1}]}},
         r"charge.refunds.data\[0\].id is not a re_/pyr_ id"),
        ({"refunds": {"data": [{"object": "refund", "id": "re_1", "amount": -5,
                                "currency": "usd", "created": 1}]}},
         r"charge.refunds.data\[0\].amount is negative"),
        ({"refunds": {"data": [{"object": "refund", "id": "re_1", "amount": 5,
                                "currency": "usd"}]}},
         r"charge.refunds.data\[0\].created is missing"),
    ],
)
def test_malformed_refund_lists_are_unprocessable(change, reason):
    payload = charge(amount_refunded=5, **change)
    payload["type"] = "charge.refunded"
    with pytest.raises(UnprocessableEvent, match=reason) as raised:
        parse(payload)
    assert SECRET_LOOKING_VALUE not in str(raised.value)


METADATA_KEYS = st.sampled_from(
    ["utm_source", "UTM_Source", "utm_campaign", "gclid", "GCLID", "fbclid", "landing_url",
     "landing_page", "referrer", "customer_email", "note"]
)
URL_TEXT = st.text(alphabet="abcXYZ019-._~%/?&=#:@+ é", max_size=30)


@settings(max_examples=150, deadline=None)
@given(metadata=st.dictionaries(
    METADATA_KEYS,
    st.one_of(URL_TEXT, st.builds("https://shop.example/{}".format, URL_TEXT),
              st.builds("//{}.example/p?utm_medium={}&x={}".format, URL_TEXT, URL_TEXT, URL_TEXT)),
    max_size=8,
))
def test_any_metadata_reparses_from_the_redacted_copy_to_the_same_hints(metadata):
    delivery = parse(charge(metadata=metadata))
    again = parse(orjson.dumps(delivery.redacted_payload))
    assert again.event == delivery.event
    assert again.redacted_payload == delivery.redacted_payload
    kept = delivery.redacted_payload["data"]["object"]["metadata"]
    assert "customer_email" not in kept and "note" not in kept
