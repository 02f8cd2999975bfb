"""Checks shared by signature schemes: secrets, digests, HMACs and how fresh a signature is."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Sequence

from skeldir.domains.ingestion.provider import SignatureError, VerificationContext

SHA256_DIGEST_SIZE = 32
DEFAULT_TOLERANCE_SECONDS = 300


def usable_secrets(secrets: Sequence[bytes]) -> list[bytes]:
    """The configured secrets, without empty ones: an empty key is one anybody can sign with."""
    usable = [secret for secret in secrets if isinstance(secret, bytes) and secret]
    if not usable:
        raise SignatureError("no signing secret is configured")
    return usable


def base64_bytes(value: str) -> bytes | None:
    """The bytes of standard, padded base64 text; None when it is not that."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None


def base64_digest(value: str | None) -> bytes:
    """The SHA-256 digest in a standard, padded base64 header value."""
    if value is None:
        raise SignatureError("signature header is missing")
    digest = base64_bytes(value)
    if digest is None:
        raise SignatureError("signature header is not base64")
    if len(digest) != SHA256_DIGEST_SIZE:
        raise SignatureError("signature header has the wrong length")
    return digest


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def check_hmac_sha256(received: Iterable[bytes], message: bytes, keys: Iterable[bytes]) -> None:
    """SignatureError unless a received digest is the HMAC-SHA256 of `message` under a key.

    Every key is used and every pair compared, so the time taken does not reveal which secret
    (if any) matched.
    """
    expected = [hmac_sha256(key, message) for key in keys]
    matched = False
    for candidate in received:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise SignatureError("signature does not match any secret")


def check_body_hmac(
    body: bytes,
    signature: str | None,
    secrets: Sequence[bytes],
    signing_key: Callable[[bytes], bytes] | None = None,
) -> None:
    """SignatureError unless `signature` is the base64 HMAC-SHA256 of the raw, non-empty body
    under a secret (or under `signing_key(secret)`); the scheme has no timestamp."""
    received = base64_digest(signature)
    if not body:
        raise SignatureError("body is empty")
    keys = usable_secrets(secrets)
    if signing_key is not None:
        keys = [signing_key(secret) for secret in keys]
    check_hmac_sha256([received], body, keys)


def tolerance_seconds(context: VerificationContext) -> float:
    """The source's `tolerance_seconds` setting, 300 when unset.

    An unusable setting rejects every delivery rather than guessing what was meant.
    """
    value = context.source_settings.get("tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise SignatureError(
            "the source's tolerance_seconds setting is not a finite, non-negative number"
        )
    return value


class StaleTimestamp(SignatureError):
    """A correct signature over a timestamp too far from this server's clock. Schemes check it
    after the signature, so only a sender that holds the secret learns this reason."""

    def __init__(self, skew_seconds: float, tolerance: float) -> None:
        super().__init__(f"signed timestamp is outside the tolerance ({tolerance:g} s)")
        self.skew_seconds = skew_seconds
        self.tolerance = tolerance


def check_freshness(timestamp: float, context: VerificationContext) -> None:
    """StaleTimestamp unless the signed `timestamp` (unix seconds) is within the tolerance of
    the context's clock, either way: a replayed old delivery and a future one both fail."""
    tolerance = tolerance_seconds(context)
    if abs(context.now - timestamp) > tolerance:
        raise StaleTimestamp(context.now - timestamp, tolerance)
