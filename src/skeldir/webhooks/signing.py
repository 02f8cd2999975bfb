"""HMAC checks shared by providers that sign the raw body with a shared secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence

from skeldir.webhooks.provider import SignatureError

SHA256_DIGEST_SIZE = 32


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def usable_secrets(secrets: Sequence[bytes]) -> list[bytes]:
    """The configured secrets, without empty ones: an empty key is one anybody can sign with."""
    usable = [secret for secret in secrets if isinstance(secret, bytes) and secret]
    if not usable:
        raise SignatureError("no signing secret is configured")
    return usable


def base64_digest(value: str | None) -> bytes:
    """The digest in a standard, padded base64 header value."""
    if value is None:
        raise SignatureError("signature header is missing")
    try:
        digest = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise SignatureError("signature header is not base64") from None
    if len(digest) != SHA256_DIGEST_SIZE:
        raise SignatureError("signature header has the wrong length")
    return digest


def any_digest_matches(received: Iterable[bytes], expected: Iterable[bytes]) -> bool:
    """Whether any received digest equals any expected one.

    Every pair is compared, so the time taken does not reveal which secret (if any) matched.
    """
    expected_digests = list(expected)
    matched = False
    for candidate in received:
        for digest in expected_digests:
            matched |= hmac.compare_digest(candidate, digest)
    return matched
