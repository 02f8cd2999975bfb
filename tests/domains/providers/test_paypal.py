import base64
import json
import threading
import zlib
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from personal_data import personal_values
from provider_fixtures import shared_fixture_dir, shared_fixture_names
from skeldir.base import money
from skeldir.domains.ingestion.event import AttributionHints, EntryKind, RevenueEntry
from skeldir.domains.ingestion.provider import (
    SignatureError,
    UnprocessableEvent,
    VerificationContext,
)
from skeldir.domains.providers import paypal, paypal_certs
from skeldir.domains.providers.paypal import PayPalProvider, signed_message
from skeldir.domains.providers.paypal_certs import CertificateCache, fetch_certificate

OWN_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "paypal"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
CERT_URL = "https://api-m.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-0test001"
WEBHOOK_ID = "1TEST000WEBHOOK1A"
OLD_WEBHOOK_ID = "1TEST000WEBHOOK0Z"
TRANSMISSION_ID = "0f1e2d3c-0000-11f0-8000-000000000001"

# Keys whose values are personal in PayPal payloads, and objects whose every value is.
# Merchant references (custom_id, invoice ids) are not personal but must not be kept either.
PAYPAL_PERSONAL_KEYS = {
    "email_address", "payer_id", "given_name", "surname", "full_name", "merchant_id",
    "note_to_payer", "custom_id", "invoice_id", "invoice_number", "custom", "address_line_1",
    "address_line_2", "admin_area_1", "admin_area_2", "postal_code", "national_number",
}
PAYPAL_PERSONAL_OBJECTS = {"payer", "payee", "shipping"}


def paypal_personal_values(fixture) -> set[str]:
    return personal_values(fixture) | _paypal_values(fixture)


def _paypal_values(node, inside: bool = False) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                found |= _paypal_values(value, inside or key in PAYPAL_PERSONAL_OBJECTS)
            elif (inside or key in PAYPAL_PERSONAL_KEYS) and len(str(value or "").strip()) >= 3:
                found.add(str(value))
    elif isinstance(node, list):
        for item in node:
            found |= _paypal_values(item, inside)
    return found


def certificate_pem(key=KEY, not_before=NOW - timedelta(days=30),
                    not_after=NOW + timedelta(days=335)) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


VALID_PEM = certificate_pem()


class Fetcher:
    """A certificate server that records which URLs were asked for."""

    def __init__(self, pem: bytes = VALID_PEM):
        self.pem = pem
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pem


def provider_with(pem: bytes = VALID_PEM) -> tuple[PayPalProvider, Fetcher]:
    fetcher = Fetcher(pem)
    return PayPalProvider(fetch_certificate=fetcher), fetcher


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(message: bytes, key=KEY) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def delivery_headers(body: bytes, webhook_id: str = WEBHOOK_ID, sent_at: datetime = NOW,
                     key=KEY, **overrides: str) -> dict[str, str]:
    time_text = rfc3339(sent_at)
    headers = {
        "paypal-transmission-id": TRANSMISSION_ID,
        "paypal-transmission-time": time_text,
        "paypal-transmission-sig": sign(
            signed_message(TRANSMISSION_ID, time_text, webhook_id, body), key),
        "paypal-cert-url": CERT_URL,
        "paypal-auth-algo": "SHA256withRSA",
        "paypal-auth-version": "v2",
    }
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return headers


def context(now: datetime = NOW, **source_settings) -> VerificationContext:
    return VerificationContext(source_settings=source_settings, now=now.timestamp())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def verified_delivery(body: bytes):
    provider, _ = provider_with()
    provider.verify(body, delivery_headers(body), [WEBHOOK_ID.encode()], context())
    return provider.parse(body, {})


def assert_nothing_personal_is_kept(fixture: dict, delivery) -> None:
    kept = "\n".join([repr(delivery.event), delivery.dedupe_key,
                      orjson.dumps(delivery.redacted_payload).decode()])
    leaked = sorted(value for value in paypal_personal_values(fixture) if value in kept)
    assert not leaked, f"personal values kept: {leaked}"


def assert_redacted_copy_parses_to_the_same_event(delivery) -> None:
    again = PayPalProvider(fetch_certificate=Fetcher()).parse(
        orjson.dumps(delivery.redacted_payload), {})
    assert again == delivery


def sale(external_id: str, minor: int, currency: str, when: str) -> RevenueEntry:
    return RevenueEntry(external_id, EntryKind.SALE, minor, currency, at(when))


def refund(external_id: str, minor: int, currency: str, when: str) -> RevenueEntry:
    return RevenueEntry(external_id, EntryKind.REFUND, minor, currency, at(when))


EXPECTED_REAL = {
    "PAYMENT.CAPTURE.COMPLETED__docs_eps_eur.json": {
        "dedupe_key": "event:WH-2B342482FC0449155-12X09416XP387753C",
        "external_order_id": "1BV95196WW992540E",
        "currency": "EUR",
        "total_minor": 100,
        "ordered_at": at("2022-04-05T10:37:05Z"),
        "updated_at": at("2022-04-05T10:37:05Z"),
        "entries": (sale("sale:56U00550J8319094C", 100, "EUR", "2022-04-05T10:37:05Z"),),
        "has_order_snapshot": True,
    },
    "PAYMENT.CAPTURE.COMPLETED__sandbox_usd_hyperse_sdk.json": {
        "dedupe_key": "event:WH-652880104N329422Y-06P85183JY752714D",
        "external_order_id": "10581139X0233013B",
        "currency": "USD",
        "total_minor": 2112,
        "ordered_at": at("2024-05-14T09:11:50Z"),
        "updated_at": at("2024-05-14T09:11:50Z"),
        "entries": (sale("sale:9XF14200T8003681K", 2112, "USD", "2024-05-14T09:11:50Z"),),
        "has_order_snapshot": True,
    },
    # No related order id: the refund attaches to the capture named by its "up" link.
    "PAYMENT.CAPTURE.REFUNDED__docs_sample.json": {
        "dedupe_key": "event:WH-1GE84257G0350133W-6RW800890C634293G",
        "external_order_id": "0JF852973C016714D",
        "currency": "USD",
        "total_minor": 0,
        "ordered_at": at("2018-08-15T12:13:29-07:00"),
        "updated_at": at("2018-08-15T12:13:29-07:00"),
        "entries": (refund("refund:1Y107995YT783435V", -99, "USD", "2018-08-15T12:13:29-07:00"),),
        "has_order_snapshot": False,
    },
    "PAYMENT.SALE.COMPLETED__php_sdk_sandbox_delivery.json": {
        "dedupe_key": "event:WH-9UG43882HX7271132-6E0871324L7949614",
        "external_order_id": "80F85758S3080410K",
        "currency": "USD",
        "total_minor": 2100,
        "ordered_at": at("2016-09-21T21:59:02Z"),
        "updated_at": at("2016-09-21T22:00:06Z"),
        "entries": (sale("sale:80F85758S3080410K", 2100, "USD", "2016-09-21T21:59:02Z"),),
        "has_order_snapshot": True,
    },
}
UNSUPPORTED_REAL = {"CHECKOUT.ORDER.APPROVED__docs_sample.json"}


@pytest.mark.parametrize("name", shared_fixture_names("paypal") or ["(shared folder missing)"])
def test_every_real_payload_verifies_and_parses_or_is_rejected_as_unsupported(name):
    body = (shared_fixture_dir("paypal") / name).read_bytes()
    fixture = json.loads(body)
    if name in UNSUPPORTED_REAL:
        provider, _ = provider_with()
        provider.verify(body, delivery_headers(body), [WEBHOOK_ID.encode()], context())
        with pytest.raises(UnprocessableEvent, match="unsupported event type") as raised:
            provider.parse(body, {})
        assert not [value for value in paypal_personal_values(fixture)
                    if value in str(raised.value)]
        return
    delivery = verified_delivery(body)
    topic = name.split("__")[0]
    assert delivery.topic == topic
    assert delivery.event.provider == "paypal" and delivery.event.topic == topic
    assert delivery.event.hints == AttributionHints()
    assert delivery.event.presentment_currency is None
    expected = EXPECTED_REAL[name]
    assert delivery.dedupe_key == expected["dedupe_key"]
    for field, value in expected.items():
        if field != "dedupe_key":
            assert getattr(delivery.event, field) == value, field
    assert_nothing_personal_is_kept(fixture, delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery)


def test_the_expected_real_payloads_are_all_present():
    names = {path.name for path in shared_fixture_dir("paypal").glob("*.json")}
    assert set(EXPECTED_REAL) | UNSUPPORTED_REAL <= names


def test_redacted_copy_keeps_only_what_is_read():
    name = "PAYMENT.CAPTURE.REFUNDED__docs_sample.json"
    body = (shared_fixture_dir("paypal") / name).read_bytes()
    redacted = verified_delivery(body).redacted_payload
    assert set(redacted) == {"id", "event_type", "create_time", "resource_type",
                             "resource_version", "resource"}
    assert redacted["resource"] == {
        "id": "1Y107995YT783435V",
        "amount": {"currency_code": "USD", "value": "0.99"},
        "create_time": "2018-08-15T12:13:29-07:00",
        "update_time": "2018-08-15T12:13:29-07:00",
        "links": [
            {"rel": "up", "href": "https://api.paypal.com/v2/payments/captures/0JF852973C016714D"}
        ],
    }


# --- the real delivery published with its headers (PayPal PHP SDK sample) ------------------

# Headers of the PAYMENT.SALE.COMPLETED sandbox delivery in paypal/PayPal-PHP-SDK
# @ bf3f436523807b8a3e5f2f7254daf6c162029465, sample/notifications/ValidateWebhookEvent.php
# (HEADERS.md section 4). The sample verifies it for webhook id 9XL90610J3647323C.
REAL_TRANSMISSION_ID = "d938e770-8046-11e6-8103-6b62a8a99ac4"
REAL_TRANSMISSION_TIME = "2016-09-21T22:00:46Z"
REAL_CERT_URL = (
    "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
)
REAL_SIGNATURE = (
    "eDOnWUj9FXOnr2naQnrdL7bhgejVSTwRbwbJ0kuk5wAtm2ZYkr7w5BSUDO7e5ZOsqLwN3sPn3RV85Jd9pjHuTlpuXDLYk"
    "+l5qiViPbaaC0tLV+8C/zbDjg2WCfvtf2NmFT8CHgPPQAByUqiiTY+RJZPPQC5np7j7WuxcegsJLeWStRAofsDLiSKrz"
    "YV3CKZYtNoNnRvYmSFMkYp/5vk4xGcQLeYNV1CC2PyqraZj8HGG6Y+KV4trhreV9VZDn+rPtLDZTbzUohie1LpEy31k2"
    "dg+1szpWaGYOz+MRb40U04oD7fD69vghCrDTYs5AsuFM2+WZtsMDmYGI0pxLjn2yw=="
)
REAL_WEBHOOK_ID = "9XL90610J3647323C"
REAL_SENT_AT = datetime(2016, 9, 21, 22, 0, 46, tzinfo=UTC)


def real_delivery() -> tuple[bytes, dict[str, str]]:
    fixture = shared_fixture_dir("paypal") / "PAYMENT.SALE.COMPLETED__php_sdk_sandbox_delivery.json"
    # The compact re-serialisation is the body PayPal sent, byte for byte (PROVENANCE.md).
    body = json.dumps(json.loads(fixture.read_bytes()), separators=(",", ":"),
                      ensure_ascii=False).encode()
    headers = {
        "paypal-auth-algo": "SHA256withRSA",
        "paypal-cert-url": REAL_CERT_URL,
        "paypal-auth-version": "v2",
        "paypal-transmission-sig": REAL_SIGNATURE,
        "paypal-transmission-time": REAL_TRANSMISSION_TIME,
        "paypal-transmission-id": REAL_TRANSMISSION_ID,
    }
    return body, headers


def test_real_delivery_body_and_signed_message_are_rebuilt_exactly():
    body, _ = real_delivery()
    assert len(body) == 1417
    assert zlib.crc32(body) == 1915257671
    assert signed_message(REAL_TRANSMISSION_ID, REAL_TRANSMISSION_TIME, REAL_WEBHOOK_ID, body) == (
        b"d938e770-8046-11e6-8103-6b62a8a99ac4|2016-09-21T22:00:46Z|9XL90610J3647323C|1915257671"
    )


def test_real_delivery_fetches_the_certificate_at_its_url():
    body, headers = real_delivery()
    # PayPal's certificate cannot be fetched here: ours stands in, so the check must fail,
    # but only after asking for the right certificate.
    provider, fetcher = provider_with(certificate_pem(
        not_before=REAL_SENT_AT - timedelta(days=1), not_after=REAL_SENT_AT + timedelta(days=1)))
    with pytest.raises(SignatureError, match="signature does not match"):
        provider.verify(body, headers, [REAL_WEBHOOK_ID.encode()], context(REAL_SENT_AT))
    assert fetcher.calls == [REAL_CERT_URL]


def test_real_delivery_verifies_when_signed_over_the_same_message_by_a_known_key():
    body, headers = real_delivery()
    message = (f"{REAL_TRANSMISSION_ID}|{REAL_TRANSMISSION_TIME}|{REAL_WEBHOOK_ID}|1915257671"
               .encode())
    headers["paypal-transmission-sig"] = sign(message)
    provider, fetcher = provider_with(certificate_pem(
        not_before=REAL_SENT_AT - timedelta(days=1), not_after=REAL_SENT_AT + timedelta(days=1)))
    provider.verify(body, headers, [REAL_WEBHOOK_ID.encode()], context(REAL_SENT_AT))
    assert fetcher.calls == [REAL_CERT_URL]
    assert provider.parse(body, headers).event.entries == EXPECTED_REAL[
        "PAYMENT.SALE.COMPLETED__php_sdk_sandbox_delivery.json"]["entries"]


def test_real_delivery_is_stale_today_and_costs_no_fetch():
    body, headers = real_delivery()
    provider, fetcher = provider_with()
    with pytest.raises(SignatureError, match="tolerance"):
        provider.verify(body, headers, [REAL_WEBHOOK_ID.encode()], VerificationContext())
    assert fetcher.calls == []


# --- own fixtures -------------------------------------------------------------------------


def own_fixture(name: str) -> bytes:
    return (OWN_FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", sorted(path.name for path in OWN_FIXTURES.glob("*.json")))
def test_own_fixtures_keep_nothing_personal_and_reparse_the_same(name):
    body = own_fixture(name)
    delivery = verified_delivery(body)
    assert paypal_personal_values(json.loads(body)), "own fixtures carry fake personal data"
    assert_nothing_personal_is_kept(json.loads(body), delivery)
    assert_redacted_copy_parses_to_the_same_event(delivery)
    assert "alex" not in orjson.dumps(delivery.redacted_payload).decode().lower()


def test_capture_with_a_related_order_belongs_to_that_order():
    delivery = verified_delivery(own_fixture("PAYMENT.CAPTURE.COMPLETED__related_order_jpy.json"))
    event = delivery.event
    assert (event.external_order_id, event.currency, event.total_minor) == (
        "8TE57000JP000001O", "JPY", 15800)
    assert event.ordered_at == at("2026-03-03T10:00:00+09:00")
    assert event.updated_at == at("2026-03-03T10:00:03+09:00")
    assert event.entries == (sale("sale:3TE57000JP000001K", 15800, "JPY",
                                  "2026-03-03T10:00:00+09:00"),)
    assert event.has_order_snapshot is True
    assert delivery.dedupe_key == "event:WH-7TEST000JPY00001-0AA11111BB2222222"


def test_capture_without_an_order_is_its_own_order():
    body = own_fixture("PAYMENT.CAPTURE.COMPLETED__without_order_kwd.json")
    event = verified_delivery(body).event
    assert (event.external_order_id, event.currency, event.total_minor) == (
        "3TE57000KW000002K", "KWD", 10500)
    assert event.entries == (sale("sale:3TE57000KW000002K", 10500, "KWD", "2026-01-26T07:59:58Z"),)


def test_refund_without_a_related_order_attaches_to_its_capture():
    body = own_fixture("PAYMENT.CAPTURE.REFUNDED__without_related_order.json")
    delivery = verified_delivery(body)
    event = delivery.event
    assert (event.external_order_id, event.currency, event.total_minor) == (
        "3TE57000JP000001K", "JPY", 0)
    assert event.has_order_snapshot is False
    assert event.entries == (refund("refund:5RE57000JP000003R", -3000, "JPY",
                                    "2026-03-04T18:29:30+09:00"),)
    # The "up" link is kept without its query string.
    assert delivery.redacted_payload["resource"]["links"] == [
        {"rel": "up", "href": "https://api-m.paypal.com/v2/payments/captures/3TE57000JP000001K"}]


def test_refund_with_a_related_order_attaches_to_the_order():
    event = verified_delivery(own_fixture("PAYMENT.CAPTURE.REFUNDED__related_order.json")).event
    assert event.external_order_id == "8TE57000EU000004O"
    assert event.entries == (refund("refund:5RE57000EU000004R", -420, "EUR",
                                    "2026-03-05T10:59:58Z"),)
    assert event.has_order_snapshot is False


def test_v1_sale_refund_attaches_to_the_sale_and_is_negative_whatever_its_sign():
    payload = json.loads(own_fixture("PAYMENT.SALE.REFUNDED__v1_negative_amount.json"))
    negative = verified_delivery(json.dumps(payload).encode()).event
    payload["resource"]["amount"]["total"] = "2.34"
    positive = verified_delivery(json.dumps(payload).encode()).event
    expected = (refund("refund:6RE57000US000005R", -234, "USD", "2026-02-10T15:41:51Z"),)
    assert negative.entries == positive.entries == expected
    assert negative.external_order_id == "4SA57000US000005S"
    assert negative.has_order_snapshot is False and negative.total_minor == 0


def test_redelivered_capture_has_a_new_event_key_but_the_same_sale_entry():
    payload = json.loads(own_fixture("PAYMENT.CAPTURE.COMPLETED__related_order_jpy.json"))
    first = verified_delivery(json.dumps(payload).encode())
    payload["id"] = "WH-7TEST000JPY00001-0AA11111BB9999999"
    second = verified_delivery(json.dumps(payload).encode())
    assert first.dedupe_key != second.dedupe_key
    assert first.event.entries == second.event.entries


def test_sale_and_refunds_net_out_on_the_capture():
    capture = json.loads(own_fixture("PAYMENT.CAPTURE.COMPLETED__without_order_kwd.json"))
    refunded = json.loads(own_fixture("PAYMENT.CAPTURE.REFUNDED__without_related_order.json"))
    refunded["resource"]["amount"] = {"currency_code": "KWD", "value": "0.500"}
    refunded["resource"]["links"] = [
        {"rel": "up", "href": "https://api-m.paypal.com/v2/payments/captures/3TE57000KW000002K"}]
    events = [verified_delivery(json.dumps(p).encode()).event for p in (capture, refunded)]
    assert {event.external_order_id for event in events} == {"3TE57000KW000002K"}
    assert sum(entry.amount_minor for event in events for entry in event.entries) == 10000


# --- verification -------------------------------------------------------------------------

BODY = own_fixture("PAYMENT.CAPTURE.COMPLETED__related_order_jpy.json")
SECRETS = [WEBHOOK_ID.encode()]


def test_provider_declares_blocking_verification():
    assert PayPalProvider.name == "paypal" and PayPalProvider.verify_may_block is True


def test_good_signature_is_accepted_with_one_fetch_of_the_certificate():
    provider, fetcher = provider_with()
    provider.verify(BODY, delivery_headers(BODY), SECRETS, context())
    assert fetcher.calls == [CERT_URL]


@pytest.mark.parametrize("signed_for", [OLD_WEBHOOK_ID, WEBHOOK_ID])
def test_several_webhook_ids_accept_either(signed_for):
    provider, _ = provider_with()
    provider.verify(BODY, delivery_headers(BODY, webhook_id=signed_for),
                    [OLD_WEBHOOK_ID.encode(), WEBHOOK_ID.encode()], context())


def test_every_webhook_id_is_tried_even_after_a_match(monkeypatch):
    tried = []
    real_signed = paypal._signed

    def counting(public_key, signature, message):
        tried.append(message.split(b"|")[2])
        return real_signed(public_key, signature, message)

    monkeypatch.setattr(paypal, "_signed", counting)
    provider, _ = provider_with()
    provider.verify(BODY, delivery_headers(BODY),
                    [WEBHOOK_ID.encode(), OLD_WEBHOOK_ID.encode(), b"third"], context())
    assert tried == [WEBHOOK_ID.encode(), OLD_WEBHOOK_ID.encode(), b"third"]


def test_signature_by_a_key_other_than_the_certificates_is_rejected():
    provider, _ = provider_with()
    with pytest.raises(SignatureError):
        provider.verify(BODY, delivery_headers(BODY, key=OTHER_KEY), SECRETS, context())


@pytest.mark.parametrize("secrets", [[], [b""], [b"\xff\xfe"], [b"with|pipe"]])
def test_no_usable_webhook_id_rejects_everything(secrets):
    provider, fetcher = provider_with()
    with pytest.raises(SignatureError):
        provider.verify(BODY, delivery_headers(BODY), secrets, context())
    assert fetcher.calls == []


def test_empty_body_is_rejected_even_when_signed():
    provider, _ = provider_with()
    with pytest.raises(SignatureError):
        provider.verify(b"", delivery_headers(b""), SECRETS, context())


@pytest.mark.parametrize(
    "url",
    [
        "http://api-m.paypal.com/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com:443/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com:8443/v1/notifications/certs/CERT-1",
        "https://user@api-m.paypal.com/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com@evil.example/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com.evil.example/v1/notifications/certs/CERT-1",
        "https://evil.example/v1/notifications/certs/CERT-1",
        "https://www.paypal.com/v1/notifications/certs/CERT-1",
        "https://API-M.PAYPAL.COM/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com./v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com/v1/oauth2/token",
        "https://api-m.paypal.com/v1/notifications/certs/../../oauth2/token",
        "https://api-m.paypal.com/v1/notifications/certs/%2e%2e/x",
        "https://api-m.paypal.com/v1/notifications/certs/CERT-1?next=https://evil.example",
        "https://api-m.paypal.com/v1/notifications/certs/CERT-1#x",
        "https://api-m.paypal.com\\@evil.example/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com/v1/notifications/certs/CERT-1 https://evil.example",
        "file:///etc/passwd",
        "//api-m.paypal.com/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com/v1/notifications/certs/" + "A" * 600,
        "https://api-m.paypal.com/v1/notifications/certs/CERT-é",
    ],
)
def test_certificate_url_off_paypal_https_is_rejected_without_a_fetch(url):
    provider, fetcher = provider_with()
    with pytest.raises(SignatureError, match="certificate URL"):
        provider.verify(BODY, delivery_headers(BODY, paypal_cert_url=url), SECRETS, context())
    assert fetcher.calls == []


@pytest.mark.parametrize("host", sorted(paypal_certs.CERT_HOSTS))
def test_certificate_urls_on_each_paypal_api_host_are_fetched(host):
    url = f"https://{host}/v1/notifications/certs/CERT-360caa42-fca2a594-0test002"
    provider, fetcher = provider_with()
    provider.verify(BODY, delivery_headers(BODY, paypal_cert_url=url), SECRETS, context())
    assert fetcher.calls == [url]


@pytest.mark.parametrize(
    ("sent_at", "tolerance", "accepted"),
    [
        (NOW - timedelta(seconds=299), None, True),
        (NOW + timedelta(seconds=299), None, True),
        (NOW - timedelta(seconds=301), None, False),
        (NOW + timedelta(seconds=301), None, False),
        (NOW - timedelta(hours=3), None, False),
        (NOW - timedelta(seconds=60), 30, False),
        (NOW - timedelta(seconds=600), 3600, True),
    ],
)
def test_transmission_time_must_be_within_the_tolerance(sent_at, tolerance, accepted):
    provider, fetcher = provider_with()
    settings_ = {} if tolerance is None else {"tolerance_seconds": tolerance}
    headers = delivery_headers(BODY, sent_at=sent_at)
    if accepted:
        provider.verify(BODY, headers, SECRETS, context(**settings_))
    else:
        with pytest.raises(SignatureError, match="tolerance"):
            provider.verify(BODY, headers, SECRETS, context(**settings_))
        assert fetcher.calls == []


@pytest.mark.parametrize("tolerance", ["300", True, -1, float("nan"), None])
def test_an_unusable_tolerance_setting_rejects(tolerance):
    provider, _ = provider_with()
    with pytest.raises(SignatureError, match="tolerance_seconds"):
        provider.verify(BODY, delivery_headers(BODY), SECRETS,
                        context(tolerance_seconds=tolerance))


def test_transmission_time_with_an_offset_is_read_as_that_instant():
    time_text = "2026-03-06T13:00:00+01:00"
    message = signed_message(TRANSMISSION_ID, time_text, WEBHOOK_ID, BODY)
    headers = delivery_headers(BODY, paypal_transmission_time=time_text,
                               paypal_transmission_sig=sign(message))
    provider, _ = provider_with()
    provider.verify(BODY, headers, SECRETS, context())


@pytest.mark.parametrize("algo", ["SHA1withRSA", "sha256withrsa", "SHA256withECDSA", "none"])
def test_other_auth_algorithms_are_rejected(algo):
    provider, fetcher = provider_with()
    with pytest.raises(SignatureError, match="auth algorithm"):
        provider.verify(BODY, delivery_headers(BODY, paypal_auth_algo=algo), SECRETS, context())
    assert fetcher.calls == []


@pytest.mark.parametrize(
    "header",
    ["paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig",
     "paypal-cert-url", "paypal-auth-algo"],
)
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_headers_are_rejected(header, value):
    headers = delivery_headers(BODY)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    provider, fetcher = provider_with()
    with pytest.raises(SignatureError):
        provider.verify(BODY, headers, SECRETS, context())
    assert fetcher.calls == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("paypal-transmission-id", "d938e770|8046"),
        ("paypal-transmission-id", "d938e770-8046-é"),
        ("paypal-transmission-id", "x" * 200),
        ("paypal-transmission-time", "2026-03-06 12:00:00Z"),
        ("paypal-transmission-time", "2026-03-06T12:00:00"),
        ("paypal-transmission-time", "1772798400"),
        ("paypal-transmission-time", "2026-02-30T12:00:00Z"),
        ("paypal-transmission-time", "yesterday"),
        ("paypal-transmission-sig", "not base64!"),
        ("paypal-transmission-sig", "é" * 344),
        ("paypal-transmission-sig", "QUFB" * 400),
        ("paypal-transmission-sig", base64.b64encode(b"short").decode()),
    ],
)
def test_garbled_headers_are_rejected(header, value):
    provider, _ = provider_with()
    with pytest.raises(SignatureError):
        provider.verify(BODY, delivery_headers(BODY, **{header.replace("-", "_"): value}),
                        SECRETS, context())


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (NOW - timedelta(days=400), NOW - timedelta(seconds=1)),
        (NOW + timedelta(seconds=1), NOW + timedelta(days=400)),
    ],
)
def test_certificate_outside_its_validity_is_rejected(not_before, not_after):
    provider, _ = provider_with(certificate_pem(not_before=not_before, not_after=not_after))
    with pytest.raises(SignatureError, match="certificate"):
        provider.verify(BODY, delivery_headers(BODY), SECRETS, context())


def ec_certificate_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec.test")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    "served",
    [
        b"",
        b"<html>maintenance</html>",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ec_certificate_pem(),
        certificate_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    ],
)
def test_unusable_certificates_are_rejected(served):
    provider, _ = provider_with(served)
    with pytest.raises(SignatureError, match="certificate could not be loaded"):
        provider.verify(BODY, delivery_headers(BODY), SECRETS, context())


def test_der_certificates_are_accepted_too():
    der = x509.load_pem_x509_certificate(VALID_PEM).public_bytes(serialization.Encoding.DER)
    provider, _ = provider_with(der)
    provider.verify(BODY, delivery_headers(BODY), SECRETS, context())


# --- the certificate cache ------------------------------------------------------------------


def test_certificate_is_fetched_once_for_two_deliveries():
    provider, fetcher = provider_with()
    other = BODY.replace(b"BB2222222", b"BB2222223")
    later = NOW + timedelta(minutes=10)
    provider.verify(BODY, delivery_headers(BODY), SECRETS, context())
    provider.verify(other, delivery_headers(other, sent_at=later), SECRETS, context(later))
    assert fetcher.calls == [CERT_URL]


def test_certificate_is_fetched_again_after_the_maximum_age():
    provider, fetcher = provider_with()
    later = NOW + timedelta(hours=25)
    provider.verify(BODY, delivery_headers(BODY), SECRETS, context())
    provider.verify(BODY, delivery_headers(BODY, sent_at=later), SECRETS, context(later))
    assert fetcher.calls == [CERT_URL, CERT_URL]


def test_cached_certificate_is_not_trusted_after_it_expires():
    provider, fetcher = provider_with(certificate_pem(not_after=NOW + timedelta(hours=1)))
    later = NOW + timedelta(hours=2)
    provider.verify(BODY, delivery_headers(BODY), SECRETS, context())
    with pytest.raises(SignatureError, match="certificate"):
        provider.verify(BODY, delivery_headers(BODY, sent_at=later), SECRETS, context(later))
    assert fetcher.calls == [CERT_URL, CERT_URL]


def test_failed_fetch_is_not_retried_for_a_minute():
    calls = []

    def failing(url):
        calls.append(url)
        raise OSError("connection refused")

    cache = CertificateCache(failing)
    for seconds in (0, 30):
        with pytest.raises(SignatureError):
            cache.public_key(CERT_URL, NOW.timestamp() + seconds)
    assert len(calls) == 1
    with pytest.raises(SignatureError):
        cache.public_key(CERT_URL, NOW.timestamp() + 61)
    assert len(calls) == 2


def test_cache_is_bounded_and_evicts_the_least_recently_used():
    fetcher = Fetcher()
    cache = CertificateCache(fetcher, max_entries=2)
    urls = [f"https://api.paypal.com/v1/notifications/certs/CERT-{n}" for n in range(3)]
    now = NOW.timestamp()
    for url in [urls[0], urls[1], urls[0], urls[2], urls[0], urls[1]]:
        cache.public_key(url, now)
    assert fetcher.calls == [urls[0], urls[1], urls[2], urls[1]]


def test_concurrent_deliveries_share_the_cache():
    provider, fetcher = provider_with()
    errors = []

    def deliver():
        try:
            provider.verify(BODY, delivery_headers(BODY), SECRETS, context())
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    provider.verify(BODY, delivery_headers(BODY), SECRETS, context())
    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == [] and fetcher.calls == [CERT_URL]


class _CertificateServer(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/cert":
            self._answer(200, VALID_PEM)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/cert")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/huge":
            self._answer(200, b"A" * (paypal_certs.MAX_CERT_BYTES + 1))
        else:
            self._answer(404, b"")

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def certificate_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CertificateServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_default_fetcher_returns_the_certificate(certificate_server):
    assert fetch_certificate(f"{certificate_server}/cert") == VALID_PEM


@pytest.mark.parametrize("path", ["/moved", "/huge", "/missing"])
def test_default_fetcher_follows_no_redirect_and_reads_a_bounded_body(certificate_server, path):
    with pytest.raises(SignatureError):
        fetch_certificate(f"{certificate_server}{path}")


# --- parsing ------------------------------------------------------------------------------

MINIMAL = json.loads(BODY)
provider = PayPalProvider(fetch_certificate=Fetcher())


def parse(payload: dict | bytes):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return provider.parse(body, {})


def changed(path: str, value):
    """MINIMAL with the value at a dotted path replaced (a path ending in a missing key adds it)."""
    payload = json.loads(BODY)
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return payload


_DELETE = object()
SECRET_LOOKING_VALUE = "alice@example.invalid"


@pytest.mark.parametrize(
    "event_type",
    ["CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.REVERSED", "BILLING.SUBSCRIPTION.CREATED"],
)
def test_unsupported_event_types(event_type):
    with pytest.raises(UnprocessableEvent, match="unsupported event type"):
        parse(changed("event_type", event_type))


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("id", _DELETE, "event.id is missing"),
        ("id", SECRET_LOOKING_VALUE, "event.id is not a PayPal id"),
        ("id", 42, "event.id"),
        ("event_type", _DELETE, "event.event_type is missing"),
        ("event_type", SECRET_LOOKING_VALUE, "event.event_type is not a supported"),
        ("event_type", ["PAYMENT.CAPTURE.COMPLETED"], "event.event_type"),
        ("resource", _DELETE, "event.resource is missing"),
        ("resource", SECRET_LOOKING_VALUE, "event.resource is not an object"),
        ("resource_type", "refund", "event.resource_type"),
        ("resource_version", "3.0", "event.resource_version"),
        ("create_time", SECRET_LOOKING_VALUE, "event.create_time"),
        ("resource.id", _DELETE, "resource.id is missing"),
        ("resource.id", SECRET_LOOKING_VALUE, "resource.id is not a PayPal id"),
        ("resource.amount", _DELETE, "resource.amount is missing"),
        ("resource.amount.value", _DELETE, "resource.amount.value is missing"),
        ("resource.amount.value", SECRET_LOOKING_VALUE, "resource.amount.value"),
        ("resource.amount.value", "1e3", "resource.amount.value"),
        ("resource.amount.value", "15800.5", "resource.amount.value"),
        ("resource.amount.value", "-1", "resource.amount.value is negative"),
        ("resource.amount.currency_code", "ZZZ", "resource.amount.currency_code"),
        ("resource.amount.currency_code", SECRET_LOOKING_VALUE, "resource.amount.currency_code"),
        ("resource.create_time", "2026-03-03T10:00:00", "resource.create_time"),
        ("resource.update_time", SECRET_LOOKING_VALUE, "resource.update_time"),
        ("resource.supplementary_data", SECRET_LOOKING_VALUE, "resource.supplementary_data"),
        ("resource.supplementary_data.related_ids.order_id", SECRET_LOOKING_VALUE,
         "resource.supplementary_data.related_ids.order_id"),
    ],
)
def test_wrong_types_are_unprocessable_with_a_reason_free_of_payload_values(path, value, reason):
    with pytest.raises(UnprocessableEvent, match=reason) as raised:
        parse(changed(path, value))
    message = str(raised.value)
    assert SECRET_LOOKING_VALUE not in message
    assert raised.value.__cause__ is None


def test_capture_without_any_create_time_is_unprocessable():
    payload = changed("resource.create_time", _DELETE)
    del payload["create_time"]
    with pytest.raises(UnprocessableEvent, match="resource.create_time is missing"):
        parse(payload)


def test_capture_without_its_own_create_time_takes_the_events():
    event = parse(changed("resource.create_time", _DELETE)).event
    assert event.ordered_at == at("2026-03-03T01:00:05.120Z")


REFUND = json.loads(own_fixture("PAYMENT.CAPTURE.REFUNDED__without_related_order.json"))


@pytest.mark.parametrize(
    "links",
    [
        None,
        [],
        [{"rel": "self", "href": "https://api-m.paypal.com/v2/payments/captures/3TE57000JP0001K"}],
        [{"rel": "up", "href": "https://api-m.paypal.com/v2/checkout/orders/8TE57000JP000001O"}],
        [{"rel": "up", "href": "javascript:alert(1)//v2/payments/captures/X"}],
    ],
)
def test_refund_without_an_order_or_a_capture_link_is_unprocessable(links):
    payload = json.loads(json.dumps(REFUND))
    payload["resource"]["links"] = links
    with pytest.raises(UnprocessableEvent, match="resource.links"):
        parse(payload)


def test_refund_link_of_the_wrong_type_is_unprocessable():
    payload = json.loads(json.dumps(REFUND))
    payload["resource"]["links"] = [{"rel": "up", "href": {"url": SECRET_LOOKING_VALUE}}]
    with pytest.raises(UnprocessableEvent, match=r"resource.links\[0\].href") as raised:
        parse(payload)
    assert SECRET_LOOKING_VALUE not in str(raised.value)


def test_v1_refund_without_its_sale_is_unprocessable():
    payload = json.loads(own_fixture("PAYMENT.SALE.REFUNDED__v1_negative_amount.json"))
    del payload["resource"]["sale_id"]
    with pytest.raises(UnprocessableEvent, match="resource.sale_id is missing"):
        parse(payload)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1, 2]", b'"event"', b"null", b"\xff\xfe{}", b'{"id": NaN}', b"[" * 100_000],
)
def test_malformed_json_is_unprocessable(body):
    with pytest.raises(UnprocessableEvent):
        parse(body)


# --- laws ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    currency=st.sampled_from(["USD", "EUR", "JPY", "KWD", "HUF"]),
    minor=st.integers(min_value=0, max_value=10**15),
    refund_sign=st.sampled_from(["", "-"]),
)
def test_amounts_round_trip_exactly(currency, minor, refund_sign):
    amount = money.format_minor(minor, currency)
    capture = changed("resource.amount", {"currency_code": currency, "value": amount})
    assert parse(capture).event.entries[0].amount_minor == minor
    assert parse(capture).event.total_minor == minor
    sale_refund = json.loads(own_fixture("PAYMENT.SALE.REFUNDED__v1_negative_amount.json"))
    sale_refund["resource"]["amount"] = {"currency": currency, "total": refund_sign + amount}
    assert parse(sale_refund).event.entries[0].amount_minor == -minor


@settings(max_examples=25, deadline=None)
@given(body=st.binary(min_size=1, max_size=2048), flip=st.integers(min_value=0),
       webhook_id=st.from_regex(r"[0-9A-Z]{17}", fullmatch=True))
def test_signature_covers_every_byte_of_the_body(body, flip, webhook_id):
    checker, _ = provider_with()
    headers = delivery_headers(body, webhook_id=webhook_id)
    checker.verify(body, headers, [webhook_id.encode()], context())
    index = flip % len(body)
    tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1:]
    with pytest.raises(SignatureError):
        checker.verify(tampered, headers, [webhook_id.encode()], context())
