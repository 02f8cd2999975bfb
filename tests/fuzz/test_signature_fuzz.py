"""Signature checks over hostile requests: every provider's `verify` and the shared signing
helpers either accept or raise SignatureError, whatever the headers (CR/LF, NUL, megabytes,
non-ASCII), bodies, secrets and source settings. A correctly signed delivery is accepted, and
the same headers over any other body are not."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import example, given
from hypothesis import strategies as st

from hostile import bounded_time, fuzz_settings, header_values, headers_like, hostile_json
from skeldir.domains.ingestion.provider import SignatureError, VerificationContext
from skeldir.domains.providers import signing, woocommerce
from skeldir.domains.providers.paypal import PayPalProvider, signed_message
from skeldir.domains.providers.registry import PROVIDERS
from skeldir.domains.providers.standard import signing_key

NOW = datetime(2026, 1, 25, 12, tzinfo=UTC)
SECRET = b"shpss_fuzz_secret&amp;"
WHSEC = b"whsec_" + base64.b64encode(b"k" * 24)
WEBHOOK_ID = b"WH-FUZZ-1"
CERT_URL = "https://api-m.paypal.com/v1/notifications/certs/CERT-fuzz"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate_pem() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz.test")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(KEY.public_key()).serial_number(1)
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
        .sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )


PEM = _certificate_pem()
# Never the network: a certificate "server" that serves the test key for every URL asked.
PROVIDERS_UNDER_TEST = {**PROVIDERS, "paypal": PayPalProvider(fetch_certificate=lambda url: PEM)}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def signed_headers(name: str, body: bytes) -> tuple[dict[str, str], list[bytes]]:
    """Headers that sign `body` as provider `name` would, and the source's secrets."""
    stamp = int(NOW.timestamp())
    if name == "shopify":
        digest = hmac.new(SECRET, body, hashlib.sha256).digest()
        return {"x-shopify-hmac-sha256": _b64(digest), "x-shopify-topic": "orders/create"}, [SECRET]
    if name == "woocommerce":
        key = woocommerce.wordpress_signing_key(SECRET)
        digest = hmac.new(key, body, hashlib.sha256).digest()
        headers = {"x-wc-webhook-signature": _b64(digest), "x-wc-webhook-topic": "order.created"}
        return headers, [SECRET]
    if name == "stripe":
        digest = hmac.new(SECRET, b"%d." % stamp + body, hashlib.sha256).hexdigest()
        return {"stripe-signature": f"t={stamp},v1={digest}"}, [SECRET]
    if name == "standard":
        signed = f"msg_1.{stamp}.".encode() + body
        digest = hmac.new(signing_key(WHSEC), signed, hashlib.sha256).digest()
        return {"webhook-id": "msg_1", "webhook-timestamp": str(stamp),
                "webhook-signature": f"v1,{_b64(digest)}"}, [WHSEC]
    sent = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    message = signed_message("tx-1", sent, WEBHOOK_ID.decode(), body)
    signature = KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {"paypal-transmission-id": "tx-1", "paypal-transmission-time": sent,
            "paypal-transmission-sig": _b64(signature), "paypal-cert-url": CERT_URL,
            "paypal-auth-algo": "SHA256withRSA"}, [WEBHOOK_ID]


def context(**settings) -> VerificationContext:
    return VerificationContext(source_settings=settings, now=NOW.timestamp())


def accepted(name: str, body: bytes, headers, secrets, verification) -> bool:
    try:
        provider = PROVIDERS_UNDER_TEST[name]
        bounded_time(lambda: provider.verify(body, headers, secrets, verification))
    except SignatureError:
        return False
    return True


bodies = st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"{}", b"\x00" * 64]))
secrets = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([b"", SECRET, WHSEC])),
                   max_size=3)
settings_values = st.one_of(
    st.sampled_from([True, -1, 0, 1e308, float("nan"), float("inf"), "300", None, 2**70]),
    hostile_json,
)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@fuzz_settings(examples=60)
@given(body=st.binary(min_size=1, max_size=300))
def test_a_signed_delivery_verifies_and_no_other_body_does(name, body):
    headers, keys = signed_headers(name, body)
    assert accepted(name, body, headers, keys, context())
    assert not accepted(name, body + b" ", headers, keys, context())


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@fuzz_settings(examples=120)
@given(data=st.data(), body=bodies, keys=secrets, tolerance=settings_values)
def test_hostile_headers_secrets_and_settings_never_raise_anything_else(
    name, data, body, keys, tolerance
):
    signed, source_keys = signed_headers(name, body)
    headers = data.draw(headers_like(signed, sorted(signed)), label="headers")
    verification = context(tolerance_seconds=tolerance, webhook_id=tolerance)
    accepted(name, body, headers, keys or source_keys, verification)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("value", ["a\r\nb", "\x00", "é" * 10, "x" * 100_000, " ", "v1,=="])
def test_each_signature_header_with_each_hostile_value_is_refused(name, value):
    body = b'{"id": 1}'
    signed, keys = signed_headers(name, body)
    for header in signed:
        if header.endswith(("topic",)):
            continue  # not part of the signature
        assert not accepted(name, body, {**signed, header: value}, keys, context()), header


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"])
def test_a_paypal_transmission_time_before_the_first_utc_instant_is_refused(moment):
    # Regression: the time overflowed when converted to UTC, an unauthenticated 500.
    body = b'{"id": 1}'
    signed, keys = signed_headers("paypal", body)
    with pytest.raises(SignatureError, match="transmission time"):
        PROVIDERS_UNDER_TEST["paypal"].verify(
            body, {**signed, "paypal-transmission-time": moment}, keys, context()
        )


@fuzz_settings(examples=300)
@given(text=header_values, keys=secrets, message=st.binary(max_size=100), now=st.floats())
@example(text="", keys=[], message=b"", now=float("nan"))
def test_the_signing_helpers_accept_or_raise_signature_error(text, keys, message, now):
    assert signing.base64_bytes(text) is None or isinstance(signing.base64_bytes(text), bytes)
    for check in (
        lambda: signing.usable_secrets(keys),
        lambda: signing.base64_digest(text),
        lambda: signing.check_hmac_sha256([message], message, signing.usable_secrets(keys)),
        lambda: signing.check_freshness(now, context()),
    ):
        try:
            bounded_time(check)
        except SignatureError:
            pass


@fuzz_settings(examples=200)
@given(body=bodies, headers=st.dictionaries(st.text(max_size=30), header_values, max_size=4))
@example(body=b"webhook_id=1", headers={})
def test_woocommerce_pings_are_recognised_without_raising(body, headers):
    assert woocommerce.is_ping(body, headers) in (True, False)
