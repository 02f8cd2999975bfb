"""A new tenant's Markov and Shapley weights are learned by the worker as soon as it has enough
converting journeys, not at the next scheduled run (an hour away), and its orders are then
credited under all eight models."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from e2e_system import RunningSystem, start_system

pytestmark = pytest.mark.e2e

SECRET = "shpss_first_weights"
CONVERSIONS = 2


@pytest.fixture(scope="module")
def system() -> Iterator[RunningSystem]:
    yield from start_system({"SKELDIR_LEARN_MIN_CONVERSIONS": str(CONVERSIONS)})


def buy(system: RunningSystem, shop: dict, order_id: int, visitor: str) -> None:
    ordered_at = datetime.now(timezone.utc) - timedelta(minutes=30)
    visits = [{"id": f"{visitor}-{n}", "visitor_id": visitor, "url": url,
               "occurred_at": (ordered_at - timedelta(hours=2 - n)).isoformat(),
               **({"checkout_token": f"chk-{order_id}"} if n else {})}
              for n, url in enumerate(["https://shop.example/?utm_source=google&utm_medium=cpc",
                                       "https://shop.example/?utm_source=news&utm_medium=email"])]
    collected = httpx.post(f"{system.api_url}/api/touchpoints", json={"touchpoints": visits},
                           headers={"Authorization": f"Bearer {shop['collect_key']}"}, timeout=10)
    assert collected.json()["accepted"] == 2, collected.text
    body = json.dumps({"id": order_id, "currency": "USD", "total_price": "30.00",
                       "created_at": ordered_at.isoformat(),
                       "checkout_token": f"chk-{order_id}"}).encode()
    digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    answer = httpx.post(shop["url"], content=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": digest})
    assert answer.json()["status"] == "accepted", answer.text


def order_models(system: RunningSystem, shop: dict, order_id: int) -> set[str]:
    view = httpx.get(f"{system.api_url}/api/attribution/orders/shopify/{order_id}", timeout=10,
                     headers={"Authorization": f"Bearer {shop['api_key']}"})
    return set(view.json().get("models", {})) if view.status_code == 200 else set()


def test_enough_converting_journeys_learn_the_first_weights_at_once(system):
    shop = system.cli("tenant", "create", "first weights", "--json")
    shop |= system.cli("source", "add", "--tenant", shop["tenant_id"], "--provider", "shopify",
                       "--secret", SECRET, "--json")
    weights_url = f"{system.api_url}/api/attribution/weights"
    reader = {"Authorization": f"Bearer {shop['api_key']}"}
    buy(system, shop, 930001, "first")
    deadline = time.monotonic() + 30
    while len(order_models(system, shop, 930001)) < 6:
        assert time.monotonic() < deadline, "the first order was not attributed in 30 s"
        time.sleep(0.2)
    # One converting journey is not enough.
    assert httpx.get(weights_url, params={"model": "markov"}, headers=reader).status_code == 404

    buy(system, shop, 930002, "second")
    deadline = time.monotonic() + 30
    while (models := order_models(system, shop, 930001)) != order_models(system, shop, 930002) \
            or "markov" not in models:
        assert time.monotonic() < deadline, f"no learned model after 30 s: {models}"
        time.sleep(0.2)
    learned = httpx.get(weights_url, params={"model": "shapley"}, headers=reader).json()
    assert (learned["version"], learned["conversions"]) == (1, CONVERSIONS)
    assert len(models) == 8
