"""Consent at collection: each signal (Google Consent Mode v2, Shopify Customer Privacy, an
explicit field) with and without analytics and ad consent; nothing of a declined item is kept."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import skeldir.adapters.api.static

from db_helpers import create_tenant
from skeldir.base.db import owner_connection
from skeldir.domains.privacy.consent import Consent, ConsentError, read_consent

URL = "https://shop.example/landing?utm_source=google&utm_medium=cpc&gclid=G-1"


@pytest.mark.parametrize(("value", "expected"), [
    (None, Consent(True, True)),
    ("granted", Consent(True, True)),
    ("denied", Consent(False, False)),
    (False, Consent(False, False)),
    ({"analytics_storage": "granted", "ad_storage": "granted"}, Consent(True, True)),
    ({"analytics_storage": "granted", "ad_storage": "denied"}, Consent(True, False)),
    ({"analytics_storage": "denied", "ad_storage": "granted"}, Consent(False, True)),
    ({"analytics_storage": "granted"}, Consent(True, False)),
    ({"analytics": True, "marketing": True}, Consent(True, True)),
    ({"analytics": True, "marketing": False}, Consent(True, False)),
    ({"analytics": False, "marketing": True}, Consent(False, True)),
])
def test_each_spelling_of_consent_is_read(value, expected):
    assert read_consent(value) == expected


@pytest.mark.parametrize("value", ["yes", 1, [], {"ad_storage": "maybe"}, {"analytics": "true"},
                                   {"something": "else"}])
def test_an_unreadable_consent_is_an_error(value):
    with pytest.raises(ConsentError):
        read_consent(value)


def post(client, key: str, document) -> dict:
    response = client.post("/api/touchpoints", content=json.dumps(document),
                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def visit(touchpoint_id: str, visitor: str, consent=None) -> dict:
    item = {"id": touchpoint_id, "visitor_id": visitor, "occurred_at": "2026-03-01T10:00:00Z",
            "url": URL, "cart_token": f"cart-{touchpoint_id}"}
    if consent is not None:
        item["consent"] = consent
    return item


def test_collection_honours_each_consent_signal(client, database):
    tenant = create_tenant(database)
    answer = post(client, tenant.collect_key, {"touchpoints": [
        visit("none", "v-none"),
        visit("gcm-all", "v-gcm-all", {"analytics_storage": "granted", "ad_storage": "granted"}),
        visit("gcm-no-ads", "v-gcm-no-ads",
              {"analytics_storage": "granted", "ad_storage": "denied"}),
        visit("gcm-denied", "v-gcm-denied",
              {"analytics_storage": "denied", "ad_storage": "granted"}),
        visit("shopify-all", "v-shopify-all", {"analytics": True, "marketing": True}),
        visit("shopify-no-ads", "v-shopify-no-ads", {"analytics": True, "marketing": False}),
        visit("shopify-denied", "v-shopify-denied", {"analytics": False, "marketing": False}),
        visit("explicit-granted", "v-explicit-granted", "granted"),
        visit("explicit-denied", "v-explicit-denied", "denied"),
        visit("bad", "v-bad", "perhaps"),
    ]})
    assert (answer["accepted"], answer["declined"]) == (6, 3)
    assert [r["index"] for r in answer["rejected"]] == [9]

    # A batch's consent covers its items that state none.
    batch = post(client, tenant.collect_key, {"consent": {"analytics_storage": "denied"},
                                              "touchpoints": [visit("batch", "v-batch")]})
    assert (batch["accepted"], batch["declined"]) == (0, 1)

    with owner_connection(database) as conn:
        rows = dict(conn.execute(
            "SELECT touchpoint_id, hints FROM touchpoints WHERE tenant_id = %s",
            (tenant.tenant_id,)).fetchall())
        text = conn.execute("SELECT coalesce(string_agg(to_jsonb(t)::text, ''), '')"
                            " FROM touchpoints t WHERE tenant_id = %s",
                            (tenant.tenant_id,)).fetchone()[0]
    assert set(rows) == {"none", "gcm-all", "gcm-no-ads", "shopify-all", "shopify-no-ads",
                         "explicit-granted"}
    for kept in ("none", "gcm-all", "shopify-all", "explicit-granted"):
        assert rows[kept]["click_ids"] == [["gclid", "G-1"]], kept
    for no_ads in ("gcm-no-ads", "shopify-no-ads"):
        assert not rows[no_ads].get("click_ids") and rows[no_ads]["utm_source"] == "google"
    # Nothing identifying of a declined item is anywhere: not its visitor id, not its id.
    for declined in ("gcm-denied", "shopify-denied", "explicit-denied", "batch"):
        assert f"v-{declined}" not in text and f'"{declined}"' not in text


def test_the_snippet_reads_each_consent_signal(client):
    snippet = client.get("/collect.js").text
    for signal in ("analytics_storage", "ad_storage", "customerPrivacy",
                   "analyticsProcessingAllowed", "marketingAllowed", "consent"):
        assert signal in snippet, signal


NODE = shutil.which("node")
SNIPPET = Path(skeldir.adapters.api.static.__file__).parent / "collect.js"
HARNESS = Path(__file__).parent / "collect_harness.js"


def run_snippet(scenario: dict) -> dict:
    if NODE is None:
        pytest.skip("node is not installed: the snippet's behaviour is not run")
    result = subprocess.run([NODE, str(HARNESS), str(SNIPPET), json.dumps(scenario)],
                            capture_output=True, text=True, timeout=30, check=True)
    return json.loads(result.stdout)


def gtag(state: dict) -> list:
    # gtag pushes its arguments object; a list reads the same by index.
    return [["consent", "default", state]]


@pytest.mark.parametrize(("scenario", "sent_consent"), [
    ({}, None),
    ({"dataLayer": gtag({"analytics_storage": "granted", "ad_storage": "denied"})},
     {"analytics_storage": "granted", "ad_storage": "denied"}),
    ({"shopify": {"analytics": True, "marketing": True}},
     {"analytics_storage": "granted", "ad_storage": "granted"}),
    ({"dataset": {"consent": "required"}, "later": "granted"},
     {"analytics_storage": "granted", "ad_storage": "granted"}),
])
def test_the_snippet_collects_with_consent_and_says_which(scenario, sent_consent):
    page = run_snippet(scenario)
    assert len(page["sent"]) == 1
    item = page["sent"][0]["touchpoints"][0]
    assert item.get("consent") == sent_consent
    assert page["stored"].get("skeldir_visitor_id") == item["visitor_id"]


@pytest.mark.parametrize("scenario", [
    {"dataLayer": gtag({"analytics_storage": "denied", "ad_storage": "granted"})},
    {"shopify": {"analytics": False, "marketing": True}},
    {"dataset": {"consent": "required"}},
    {"dataset": {"consent": "required"}, "later": "denied"},
])
def test_the_snippet_sends_and_stores_nothing_without_analytics_consent(scenario):
    assert run_snippet(scenario) == {"sent": [], "stored": {}}
