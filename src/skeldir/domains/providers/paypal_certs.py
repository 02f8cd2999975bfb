"""PayPal's signing certificates: which URLs may be fetched, how, and how long they are kept.

The certificate is trusted because it comes over TLS from one of PayPal's API hosts, so the
URL check is the security boundary: https only, an exact host, no userinfo, no port.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from skeldir.domains.ingestion.provider import SignatureError

CERT_HOSTS = frozenset(
    {
        "api.paypal.com",
        "api-m.paypal.com",
        "api.sandbox.paypal.com",
        "api-m.sandbox.paypal.com",
    }
)
CERT_PATH_PREFIX = "/v1/notifications/certs/"
FETCH_TIMEOUT_SECONDS = 5.0
MAX_CERT_BYTES = 64 * 1024
MAX_URL_LENGTH = 512
MIN_RSA_KEY_BITS = 2048

CertificateFetcher = Callable[[str], bytes]


def checked_cert_url(url: str | None) -> str:
    """`url` when it names a certificate on a PayPal API host; SignatureError otherwise."""
    if url is None:
        raise SignatureError("certificate URL header is missing")
    if len(url) > MAX_URL_LENGTH or not url.isascii() or not url.isprintable() or " " in url:
        raise SignatureError("certificate URL is malformed")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise SignatureError("certificate URL is malformed") from None
    # The netloc must be the bare host: no "user@", no ":443", no upper case or trailing dot.
    if parts.scheme != "https" or parts.netloc not in CERT_HOSTS:
        raise SignatureError("certificate URL is not on a PayPal host over https")
    if not parts.path.startswith(CERT_PATH_PREFIX) or parts.query or parts.fragment:
        raise SignatureError("certificate URL is not a PayPal certificate path")
    if ".." in parts.path or "\\" in parts.path or "%" in parts.path:
        raise SignatureError("certificate URL is not a PayPal certificate path")
    return url


def fetch_certificate(url: str) -> bytes:
    """GET `url` once (no redirects, 5 s timeouts) and return at most MAX_CERT_BYTES."""
    with (
        httpx.Client(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client,
        client.stream("GET", url) as response,
    ):
        if response.status_code != 200:
            raise SignatureError("certificate fetch did not answer 200")
        received = bytearray()
        for chunk in response.iter_bytes():
            received += chunk
            if len(received) > MAX_CERT_BYTES:
                raise SignatureError("certificate is too large")
        return bytes(received)


@dataclass(frozen=True, slots=True)
class _Certificate:
    public_key: RSAPublicKey
    not_before: float
    not_after: float
    # When the cache stops trusting this copy (never after not_after).
    expires_at: float


class CertificateCache:
    """Public keys by certificate URL, bounded, each kept until its expiry or `max_age`.

    A URL that failed (fetch error, not a usable certificate) is not fetched again for
    `failure_seconds`, so repeated bad deliveries do not turn into repeated fetches.
    """

    def __init__(
        self,
        fetch: CertificateFetcher = fetch_certificate,
        *,
        max_entries: int = 32,
        max_age_seconds: float = 24 * 3600,
        failure_seconds: float = 60,
    ) -> None:
        self._fetch = fetch
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._failure_seconds = failure_seconds
        self._certificates: OrderedDict[str, _Certificate] = OrderedDict()
        self._failures: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def public_key(self, url: str, now: float) -> RSAPublicKey:
        """The RSA key of the certificate at `url`, valid at `now`; SignatureError otherwise."""
        url = checked_cert_url(url)
        certificate = self._cached(url, now)
        if certificate is None:
            certificate = self._load(url, now)
        if not certificate.not_before <= now <= certificate.not_after:
            raise SignatureError("certificate is not valid now")
        return certificate.public_key

    def _cached(self, url: str, now: float) -> _Certificate | None:
        with self._lock:
            if self._failures.get(url, now) > now:
                raise SignatureError("certificate recently failed to load")
            certificate = self._certificates.get(url)
            if certificate is None or certificate.expires_at <= now:
                self._certificates.pop(url, None)
                return None
            self._certificates.move_to_end(url)
            return certificate

    def _load(self, url: str, now: float) -> _Certificate:
        # Fetched outside the lock: a slow fetch must not hold up deliveries with cached keys.
        try:
            certificate = self._parsed(self._fetch(url), now)
        except Exception:  # noqa: BLE001 - an injected fetcher may fail in any way; none verifies
            with self._lock:
                self._remember(self._failures, url, now + self._failure_seconds)
            raise SignatureError("certificate could not be loaded") from None
        with self._lock:
            self._failures.pop(url, None)
            self._remember(self._certificates, url, certificate)
        return certificate

    def _parsed(self, data: bytes, now: float) -> _Certificate:
        if data.lstrip().startswith(b"-----BEGIN"):
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
        public_key = certificate.public_key()
        if not isinstance(public_key, RSAPublicKey) or public_key.key_size < MIN_RSA_KEY_BITS:
            raise ValueError("certificate key is not RSA of at least 2048 bits")
        not_before = certificate.not_valid_before_utc.timestamp()
        not_after = certificate.not_valid_after_utc.timestamp()
        if not not_before <= now <= not_after:
            raise ValueError("certificate is not valid now")
        return _Certificate(public_key, not_before, not_after, min(not_after, now + self._max_age))

    def _remember(self, entries: OrderedDict, url: str, value: object) -> None:
        entries[url] = value
        entries.move_to_end(url)
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
