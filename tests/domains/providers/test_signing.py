import base64
import hashlib
import hmac

import pytest

from skeldir.domains.ingestion.provider import SignatureError, VerificationContext
from skeldir.domains.providers import signing
from skeldir.domains.providers.signing import (
    base64_bytes,
    check_freshness,
    check_hmac_sha256,
    tolerance_seconds,
)

NOW = 1_769_344_497.0


def context(**source_settings) -> VerificationContext:
    return VerificationContext(source_settings=source_settings, now=NOW)


def test_the_tolerance_defaults_to_five_minutes():
    assert tolerance_seconds(context()) == 300
    assert tolerance_seconds(context(tolerance_seconds=0)) == 0
    assert tolerance_seconds(context(tolerance_seconds=2.5)) == 2.5


@pytest.mark.parametrize("setting", [True, -1, -0.5, "300", None, float("inf"), float("nan")])
def test_an_unusable_tolerance_rejects_rather_than_guessing(setting):
    with pytest.raises(SignatureError, match="tolerance_seconds"):
        tolerance_seconds(context(tolerance_seconds=setting))
    with pytest.raises(SignatureError, match="tolerance_seconds"):
        check_freshness(NOW, context(tolerance_seconds=setting))


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_the_tolerance_are_fresh(offset):
    check_freshness(NOW + offset, context())


@pytest.mark.parametrize("offset", [-301, 301, -(10**9)])
def test_old_and_future_timestamps_are_not(offset):
    with pytest.raises(SignatureError, match="tolerance"):
        check_freshness(NOW + offset, context())


@pytest.mark.parametrize("text", ["not base64!", "QUJD", "QUJ", "é", ""])
def test_base64_is_standard_and_padded(text):
    expected = {"QUJD": b"ABC", "": b""}.get(text)
    assert base64_bytes(text) == expected


def test_an_hmac_matches_under_any_key_and_every_key_is_used(monkeypatch):
    keys = [b"old", b"new", b"third"]
    digest = hmac.new(b"new", b"message", hashlib.sha256).digest()
    computed = []

    def counting_hmac(key, message):
        computed.append(key)
        return hmac.new(key, message, hashlib.sha256).digest()

    monkeypatch.setattr(signing, "hmac_sha256", counting_hmac)
    check_hmac_sha256([b"\0" * 32, digest], b"message", keys)
    assert computed == keys
    with pytest.raises(SignatureError, match="does not match"):
        check_hmac_sha256([digest], b"other message", keys)
    with pytest.raises(SignatureError, match="does not match"):
        check_hmac_sha256([], b"message", keys)


def test_a_base64_digest_header_is_one_sha256_digest():
    digest = hashlib.sha256(b"x").digest()
    assert signing.base64_digest(base64.b64encode(digest).decode()) == digest
    for value in [None, "not base64!", base64.b64encode(b"short").decode()]:
        with pytest.raises(SignatureError):
            signing.base64_digest(value)
