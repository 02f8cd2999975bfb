"""The contract every registered provider keeps, checked the same way for each: a signed
delivery verifies; a tampered body, a retired secret, a stale timestamp (where the scheme signs
one) and a missing signature header do not; a ping is recognised only while unsigned. The
providers signing with an HMAC of a shared secret also refuse an empty body and an empty secret
list, accept any configured secret and try every one.

Each provider's own test file keeps what is particular to it (garbled headers, tolerance
settings, key formats, parsing). A provider defined here and registered with one line passes
the same contract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from skeldir.domains.ingestion.provider import (
    Delivery,
    Provider,
    SignatureError,
    VerificationContext,
)
from skeldir.domains.providers import registry, signing
from skeldir.domains.providers.paypal import PayPalProvider, signed_message
from skeldir.domains.providers.signing import check_freshness, check_hmac_sha256, usable_secrets
from skeldir.domains.providers.woocommerce import wordpress_signing_key

NOW = 1_775_000_000
STALE = NOW - 3600
BODY = b'{"id": "evt_contract", "total": "10.50"}'
TAMPERED = b'{"id": "evt_contract", "total": "99.50"}'
SECRET, RETIRED = b"current-secret", b"retired-secret"


@dataclass(frozen=True)
class ContractCase:
    """How to sign for one provider: its headers for a body, a secret and a time."""

    sign: Callable[[bytes, bytes, int], dict[str, str]]
    secret: bytes = SECRET
    retired: bytes = RETIRED
    signs_a_timestamp: bool = False
    # A provider that verifies with more than its secrets (PayPal fetches a certificate).
    provider: Provider | None = None
    ping: tuple[bytes, dict[str, str]] | None = None


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _shopify(body: bytes, secret: bytes, at: int) -> dict[str, str]:
    return {"x-shopify-topic": "orders/create", "x-shopify-hmac-sha256": _b64_hmac(secret, body)}


def _woocommerce(body: bytes, secret: bytes, at: int) -> dict[str, str]:
    key = wordpress_signing_key(secret)
    return {"x-wc-webhook-topic": "order.created", "x-wc-webhook-signature": _b64_hmac(key, body)}


def _stripe(body: bytes, secret: bytes, at: int) -> dict[str, str]:
    digest = hmac.new(secret, b"%d." % at + body, hashlib.sha256).hexdigest()
    return {"stripe-signature": f"t={at},v1={digest}"}


def _standard_secret(key: bytes) -> bytes:
    return b"whsec_" + base64.b64encode(key)


def _standard(body: bytes, secret: bytes, at: int) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix(b"whsec_"))
    message_id = "msg_contract"
    signature = _b64_hmac(key, f"{message_id}.{at}.".encode() + body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(at),
        "webhook-signature": f"v1,{signature}",
    }


_PAYPAL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PAYPAL_CERT_URL = "https://api-m.paypal.com/v1/notifications/certs/CERT-contract-0001"
_PAYPAL_TRANSMISSION = "0f1e2d3c-0000-11f0-8000-00000000c0de"


def _paypal_certificate() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.test")])
    issued = datetime.fromtimestamp(NOW, UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_PAYPAL_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - timedelta(days=30))
        .not_valid_after(issued + timedelta(days=300))
        .sign(_PAYPAL_KEY, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


_PAYPAL_PEM = _paypal_certificate()


def _paypal(body: bytes, secret: bytes, at: int) -> dict[str, str]:
    sent = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = signed_message(_PAYPAL_TRANSMISSION, sent, secret.decode(), body)
    signature = _PAYPAL_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "paypal-transmission-id": _PAYPAL_TRANSMISSION,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": base64.b64encode(signature).decode(),
        "paypal-cert-url": _PAYPAL_CERT_URL,
        "paypal-auth-algo": "SHA256withRSA",
    }


class ContractTestProvider:
    """A provider as small as the contract allows: HMAC-SHA256 over `<timestamp>.<body>`."""

    name = "contract-test"
    verify_may_block = False
    topic_header = "x-contract-topic"
    signature_headers = ("x-contract-signature",)
    ping = None
    legacy_routes: Mapping[str, str] = {}

    def verify(self, body, headers, secrets, context=None) -> None:
        context = context or VerificationContext()
        timestamp, _, signature = (headers.get("x-contract-signature") or "").partition(",")
        if not timestamp.isdigit() or not signature:
            raise SignatureError("signature header is missing or garbled")
        check_freshness(int(timestamp), context)
        received = [bytes.fromhex(signature)] if len(signature) == 64 else []
        check_hmac_sha256(received, timestamp.encode() + b"." + body, usable_secrets(secrets))

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        raise NotImplementedError("the contract covers verification")


def _contract_test(body: bytes, secret: bytes, at: int) -> dict[str, str]:
    digest = hmac.new(secret, b"%d." % at + body, hashlib.sha256).hexdigest()
    return {"x-contract-topic": "order.created", "x-contract-signature": f"{at},{digest}"}


CASES: dict[str, ContractCase] = {
    "shopify": ContractCase(_shopify),
    "stripe": ContractCase(_stripe, signs_a_timestamp=True),
    "woocommerce": ContractCase(
        _woocommerce, ping=(b"webhook_id=12", {"content-type": "application/x-www-form-urlencoded"})
    ),
    "paypal": ContractCase(
        _paypal,
        secret=b"1CONTRACT0WEBHOOK",
        retired=b"1CONTRACT0RETIRED",
        signs_a_timestamp=True,
        provider=PayPalProvider(fetch_certificate=lambda url: _PAYPAL_PEM),
    ),
    "standard": ContractCase(
        _standard,
        secret=_standard_secret(b"current-key-32-bytes-long-enough"),
        retired=_standard_secret(b"retired-key-32-bytes-long-enough"),
        signs_a_timestamp=True,
    ),
    "contract-test": ContractCase(_contract_test, signs_a_timestamp=True),
}


@pytest.fixture(autouse=True)
def contract_test_provider() -> Iterator[None]:
    """The test provider is registered for each test, and the registry restored after."""
    saved = [(table, dict(table)) for table in registry.TABLES]
    registry.register(ContractTestProvider())
    yield
    for table, contents in saved:
        table.clear()
        table.update(contents)


NAMES = [*registry.PROVIDERS, ContractTestProvider.name]


def _provider(name: str) -> Provider:
    return CASES[name].provider or registry.PROVIDERS[name]


def _context(at: float = NOW) -> VerificationContext:
    return VerificationContext(now=at)


def test_every_registered_provider_has_a_contract_case():
    assert set(registry.PROVIDERS) <= set(CASES)


def test_the_test_provider_is_registered_with_its_facts():
    assert registry.PROVIDERS["contract-test"].name == "contract-test"
    assert registry.SIGNATURE_HEADERS["contract-test"] == ("x-contract-signature",)
    assert registry.TOPIC_HEADERS["contract-test"] == "x-contract-topic"


@pytest.mark.parametrize("name", NAMES)
def test_a_signed_delivery_verifies(name):
    case = CASES[name]
    _provider(name).verify(BODY, case.sign(BODY, case.secret, NOW), [case.secret], _context())


@pytest.mark.parametrize("name", NAMES)
def test_a_tampered_body_is_rejected(name):
    case = CASES[name]
    with pytest.raises(SignatureError):
        _provider(name).verify(
            TAMPERED, case.sign(BODY, case.secret, NOW), [case.secret], _context()
        )


@pytest.mark.parametrize("name", NAMES)
def test_a_retired_secret_is_rejected_once_it_is_no_longer_configured(name):
    case = CASES[name]
    headers = case.sign(BODY, case.retired, NOW)
    _provider(name).verify(BODY, headers, [case.retired, case.secret], _context())
    with pytest.raises(SignatureError):
        _provider(name).verify(BODY, headers, [case.secret], _context())


@pytest.mark.parametrize("name", [name for name in NAMES if CASES[name].signs_a_timestamp])
def test_a_stale_timestamp_is_rejected(name):
    case = CASES[name]
    with pytest.raises(SignatureError):
        _provider(name).verify(BODY, case.sign(BODY, case.secret, STALE), [case.secret], _context())


@pytest.mark.parametrize("name", NAMES)
def test_without_its_signature_headers_a_delivery_is_rejected(name):
    case = CASES[name]
    declared = registry.SIGNATURE_HEADERS[name]
    headers = {k: v for k, v in case.sign(BODY, case.secret, NOW).items() if k not in declared}
    assert headers != case.sign(BODY, case.secret, NOW), "the declared headers carry the signature"
    with pytest.raises(SignatureError):
        _provider(name).verify(BODY, headers, [case.secret], _context())


@pytest.mark.parametrize("name", NAMES)
def test_a_ping_is_recognised_only_unsigned_and_never_verifies(name):
    case, is_ping = CASES[name], registry.PINGS.get(name)
    assert (is_ping is None) == (case.ping is None), "a provider's ping and its case agree"
    if is_ping is None:
        return
    body, headers = case.ping
    assert is_ping(body, headers)
    assert not is_ping(BODY, case.sign(BODY, case.secret, NOW))
    with pytest.raises(SignatureError):
        _provider(name).verify(body, headers, [case.secret], _context())


# The providers that sign with an HMAC of a shared secret keep these laws of the secret list.
SHARED_SECRET_HMAC = ["shopify", "woocommerce", "stripe"]


@pytest.mark.parametrize("name", SHARED_SECRET_HMAC)
def test_an_empty_body_is_rejected_even_when_signed(name):
    case = CASES[name]
    with pytest.raises(SignatureError):
        _provider(name).verify(b"", case.sign(b"", case.secret, NOW), [case.secret], _context())


@pytest.mark.parametrize("secrets", [[], [b""]])
@pytest.mark.parametrize("name", SHARED_SECRET_HMAC)
def test_no_usable_secret_rejects_everything(name, secrets):
    case = CASES[name]
    with pytest.raises(SignatureError):
        _provider(name).verify(BODY, case.sign(BODY, b"", NOW), secrets, _context())


@pytest.mark.parametrize("signed_with", ["retired", "secret"])
@pytest.mark.parametrize("name", SHARED_SECRET_HMAC)
def test_rotated_secrets_accept_either(name, signed_with):
    case = CASES[name]
    headers = case.sign(BODY, getattr(case, signed_with), NOW)
    _provider(name).verify(BODY, headers, [case.retired, case.secret], _context())


@pytest.mark.parametrize("name", SHARED_SECRET_HMAC)
def test_every_secret_is_tried_even_after_a_match(name, monkeypatch):
    case, computed = CASES[name], []

    def counting_hmac(secret, message):
        computed.append(secret)
        return hmac.new(secret, message, hashlib.sha256).digest()

    monkeypatch.setattr(signing, "hmac_sha256", counting_hmac)
    secrets = [case.secret, case.retired, b"third"]
    _provider(name).verify(BODY, case.sign(BODY, case.secret, NOW), secrets, _context())
    assert computed == secrets


def test_the_clock_defaults_to_now():
    case = CASES["contract-test"]
    now = int(time.time())
    ContractTestProvider().verify(BODY, case.sign(BODY, SECRET, now), [SECRET])

