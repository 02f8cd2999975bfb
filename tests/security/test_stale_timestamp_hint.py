"""A correctly signed delivery whose signed timestamp is outside the tolerance is told why (the
clocks), and only a sender holding the secret is: a wrong signature over a stale timestamp gets
the same bytes as an unknown source."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
from signed_deliveries import SECRETS, sale, secret_key_bytes

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.operations import tenants

HOUR = 3600


@pytest.fixture(scope="module")
def paths(database: Settings) -> dict[str, str]:
    box = secret_box(database)
    with owner_connection(database) as conn:
        created = tenants.create_tenant(conn, box, "clocks")
        return {provider: urlsplit(tenants.add_source(
            conn, box, tenant_id=created.tenant_id, provider=provider, secret=SECRETS[provider],
            public_url="http://test").url).path for provider in ("stripe", "standard")}


def signed_at(provider: str, stamp: int, key: bytes) -> tuple[bytes, dict]:
    body = json.dumps(sale(provider, 9100)).encode()
    headers = {"content-type": "application/json"}
    if provider == "stripe":
        signature = hmac.new(key, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        headers["stripe-signature"] = f"t={stamp},v1={signature}"
    else:
        message_id = uuid.uuid4().hex
        digest = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        headers |= {"webhook-id": message_id, "webhook-timestamp": str(stamp),
                    "webhook-signature": f"v1,{base64.b64encode(digest).decode()}"}
    return body, headers


@pytest.mark.parametrize(("provider", "offset", "direction"), [
    ("stripe", -HOUR, "behind"), ("standard", HOUR, "ahead of")])
def test_a_signed_stale_timestamp_gets_a_hint_about_the_clocks(client, paths, provider, offset,
                                                              direction):
    body, headers = signed_at(provider, int(time.time()) + offset, secret_key_bytes(provider))
    answer = client.post(paths[provider], content=body, headers=headers)
    assert answer.status_code == 401
    detail = answer.json()["detail"]
    assert f"{direction} this server's clock" in detail and "tolerance of 300 s" in detail
    assert "check the clocks" in detail and "--tolerance-seconds" in detail


@pytest.mark.parametrize("provider", ["stripe", "standard"])
def test_a_stale_timestamp_under_a_wrong_signature_is_the_generic_refusal(client, paths,
                                                                          provider):
    stale = int(time.time()) - HOUR
    body, headers = signed_at(provider, stale, b"whsec_" + b"not the secret".ljust(32, b"!"))
    wrong = client.post(paths[provider], content=body, headers=headers)
    body, headers = signed_at(provider, stale, secret_key_bytes(provider))
    unknown = client.post(f"/hooks/src_{uuid.uuid4().hex}_{'A' * 32}", content=body,
                          headers=headers)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert "clock" not in wrong.text
