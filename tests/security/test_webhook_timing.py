"""An unknown source, an unknown tenant key and a bad signature are told apart neither by the
answer nor by its timing, because they take the same path: the provider's own check runs once,
against the source's secrets or against as many decoy ones (skeldir.adapters.webhooks.router).

Proven structurally (a spy on every provider's `verify`; byte-identical answers), then checked
statistically as a sanity check only: medians of alternating requests, with a generous bound.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from signed_deliveries import local_paypal_provider, sale, signed

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box
from skeldir.base.db import owner_connection
from skeldir.domains.providers import registry
from skeldir.operations import tenants

HMAC_PROVIDERS = ("shopify", "stripe", "woocommerce", "standard")
WRONG_SECRET = b"a-secret-nobody-configured"


@dataclass(frozen=True)
class Tenant:
    tenant_id: uuid.UUID
    webhook_key: str
    paths: dict[str, str]


@pytest.fixture(scope="module")
def tenant(database: Settings) -> Tenant:
    """A tenant with one source per provider, each with one secret."""
    box = secret_box(database)
    with owner_connection(database) as conn:
        created = tenants.create_tenant(conn, box, "timing")
        paths = {
            provider: urlsplit(tenants.add_source(
                conn, box, tenant_id=created.tenant_id, provider=provider,
                secret=f"timing-secret-{provider}", public_url="http://test").url).path
            for provider in registry.PROVIDERS
        }
    return Tenant(created.tenant_id, created.webhook_key, paths)


@pytest.fixture
def verify_calls(monkeypatch) -> list[tuple[str, int]]:
    """(provider, number of secrets) for every signature check the edge makes."""
    calls: list[tuple[str, int]] = []
    monkeypatch.setitem(registry.PROVIDERS, "paypal", local_paypal_provider())
    for name, provider in registry.PROVIDERS.items():
        def spy(body, headers, secrets, context=None, _name=name, _verify=provider.verify):
            calls.append((_name, len(secrets)))
            return _verify(body, headers, secrets, context)
        monkeypatch.setattr(provider, "verify", spy)
    return calls


def refusals(tenant: Tenant, provider: str) -> dict[str, tuple[str, dict]]:
    """Every way of being refused for `provider`: (path, extra headers)."""
    unknown_tenant = uuid.uuid4().hex
    return {
        "bad signature at the source URL": (tenant.paths[provider], {}),
        "unknown source token": (f"/hooks/src_{unknown_tenant}_{'A' * 32}", {}),
        "unknown token of a known tenant": (f"/hooks/src_{tenant.tenant_id.hex}_{'B' * 32}", {}),
        "malformed source token": ("/hooks/not-a-token", {}),
        "bad signature with the tenant key": (
            f"/api/webhooks/{provider}", {"x-skeldir-tenant-key": tenant.webhook_key}),
        "unknown tenant key": (
            f"/api/webhooks/{provider}", {"x-skeldir-tenant-key": f"skd_{unknown_tenant}_C"}),
        "no tenant key": (f"/api/webhooks/{provider}", {}),
    }


@pytest.mark.parametrize("provider", HMAC_PROVIDERS)
def test_every_refusal_runs_the_providers_check_once_with_as_many_secrets(
        tenant: Tenant, client, verify_calls, provider: str) -> None:
    body, headers = signed(provider, sale(provider, 950001), secret=WRONG_SECRET)
    answers = {}
    for case, (path, extra) in refusals(tenant, provider).items():
        verify_calls.clear()
        response = client.post(path, content=body, headers={**headers, **extra})
        assert response.status_code == 401, (case, response.text)
        assert verify_calls == [(provider, 1)], case
        answers[case] = (response.content, tuple(sorted(response.headers.items())))
    assert len(set(answers.values())) == 1, answers


def test_paypal_checks_a_known_source_only_and_answers_alike(tenant: Tenant, client,
                                                             verify_calls) -> None:
    # Verifying PayPal may fetch a certificate: never for a request no source vouches for.
    body, headers = signed("paypal", sale("paypal", 950002), secret=b"WRONGWEBHOOKID")
    answers = {}
    for case, (path, extra) in refusals(tenant, "paypal").items():
        verify_calls.clear()
        response = client.post(path, content=body, headers={**headers, **extra})
        assert response.status_code == 401, (case, response.text)
        known = case.startswith("bad signature")
        assert verify_calls == ([("paypal", 1)] if known else []), case
        answers[case] = (response.content, tuple(sorted(response.headers.items())))
    assert len(set(answers.values())) == 1, answers


def median_milliseconds(client, requests: dict[str, tuple[str, bytes, dict]],
                        rounds: int) -> dict[str, float]:
    """Median time of each request, sent in alternation so drift hits every one alike."""
    timings: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(rounds):
        for name, (path, body, headers) in requests.items():
            started = time.perf_counter()
            response = client.post(path, content=body, headers=headers)
            timings[name].append(time.perf_counter() - started)
            assert response.status_code == 401, (name, response.text)
    return {name: statistics.median(values) * 1000 for name, values in timings.items()}


@pytest.mark.parametrize("provider, body_bytes", [("shopify", 0), ("stripe", 1_000_000)])
def test_refusals_take_about_as_long_as_each_other(tenant: Tenant, client, provider: str,
                                                    body_bytes: int) -> None:
    # A large body makes the signature check the bulk of the work: skipping it would show.
    document = {**sale(provider, 950003), "padding": "x" * body_bytes}
    body, headers = signed(provider, document, secret=WRONG_SECRET)
    cases = refusals(tenant, provider)
    requests = {
        case: (cases[case][0], body, {**headers, **cases[case][1]})
        for case in ("bad signature at the source URL", "unknown source token",
                     "bad signature with the tenant key", "unknown tenant key")
    }
    median_milliseconds(client, requests, 10)  # warm caches and code paths
    # Another process on a 2-core machine can slow one case's batch: a path that skipped the
    # check would be faster in every attempt, while load that hits one attempt spares the next.
    attempts = []
    for _ in range(3):
        medians = median_milliseconds(client, requests, 300 if body_bytes == 0 else 100)
        attempts.append(medians)
        if max(medians.values()) < min(medians.values()) * 1.3:
            return
    pytest.fail(f"one refusal is consistently faster or slower than another: {attempts}")
