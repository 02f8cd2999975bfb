"""Sending the demo day to a running system over HTTP, and waiting until it is attributed.

The ad spend goes first, then the touchpoints, as a storefront's collector sends them before
anyone checks out; then every webhook in the order its platform would send it, each signed just
before it is sent.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx

from skeldir.operations.demo.deliveries import signed
from skeldir.operations.demo.journeys import Day
from skeldir.operations.demo.payloads import messages, touchpoint_item

TOUCHPOINT_BATCH = 250
# The most rows `POST /api/spend` takes in one request.
SPEND_BATCH = 10_000
# A delivery that is stored, or was stored before (the day sent again), is what we want.
_STORED = ("accepted", "duplicate")


class DemoError(RuntimeError):
    pass


def check_api(client: httpx.Client, public_url: str) -> None:
    try:
        healthy = client.get(f"{public_url}/healthz").status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        raise DemoError(f"no Skeldir API answers at {public_url}: start `skeldir up` first")


def send_touchpoints(client: httpx.Client, public_url: str, collect_key: str, day: Day) -> int:
    items = [touchpoint_item(touchpoint) for touchpoint in day.touchpoints]
    for first in range(0, len(items), TOUCHPOINT_BATCH):
        response = _request(
            client,
            "POST",
            f"{public_url}/api/touchpoints",
            headers={"Authorization": f"Bearer {collect_key}", "Content-Type": "application/json"},
            content=json.dumps({"touchpoints": items[first : first + TOUCHPOINT_BATCH]}).encode(),
        )
        if response.status_code != 200 or response.json()["rejected"]:
            raise DemoError(f"touchpoints were refused ({response.status_code}): {response.text}")
    return len(items)


def send_spend(client: httpx.Client, public_url: str, api_key: str, day: Day) -> int:
    """The ads' spend through `POST /api/spend`, as a shop's spend export would load it."""
    rows = list(day.spend)
    for first in range(0, len(rows), SPEND_BATCH):
        batch = {"rows": rows[first : first + SPEND_BATCH]}
        response = _request(
            client,
            "POST",
            f"{public_url}/api/spend",
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            content=json.dumps(batch).encode(),
        )
        if response.status_code != 200:
            raise DemoError(f"the spend was refused ({response.status_code}): {response.text}")
    return len(rows)


def send_webhooks(
    client: httpx.Client,
    day: Day,
    webhook_urls: dict[str, str],
    signing_secrets: dict[str, str],
) -> Counter[str]:
    """Every order's webhooks in the order they happened; the count sent per source."""
    ordered = sorted(
        (message for order in day.orders for message in messages(order)),
        key=lambda message: message.sent_at,
    )
    sent: Counter[str] = Counter()
    for message in ordered:
        request = signed(message, signing_secrets[message.source], int(time.time()))
        response = _request(
            client,
            "POST",
            webhook_urls[request.source],
            headers=request.headers,
            content=request.body,
        )
        status = response.json().get("status") if response.status_code == 200 else None
        if status not in _STORED:
            raise DemoError(
                f"the {request.source} source answered {request.topic} with"
                f" {response.status_code}: {response.text[:300]}"
            )
        sent[request.source] += 1
    return sent


def wait_until_reported(
    client: httpx.Client,
    public_url: str,
    api_key: str,
    timeout: float,
    on_progress: Callable[[int, int], None],
) -> None:
    """Poll `GET /api/status` (what the dashboard reads) until the tenant's reports are fresh:
    no order waits for attribution or for its report rows. `on_progress(to_attribute,
    to_report)` whenever the counts change."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        status = _api_json(client, "GET", f"{public_url}/api/status", api_key, "GET /api/status")
        freshness = status["freshness"]
        counts = (freshness["pending_orders"], freshness["report_dirty_orders"])
        if counts != last:
            on_progress(*counts)
            last = counts
        if freshness["reports_fresh"]:
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"{counts[0]} orders still unattributed and {counts[1]} unreported after"
                f" {timeout:.0f}s: is the worker running? (`skeldir up` runs one)"
            )
        time.sleep(0.25)


def learn_weights(client: httpx.Client, public_url: str, api_key: str) -> dict:
    """Learn the Markov and Shapley weights now (`POST /api/attribution/weights/learn`), so the
    demo's orders are credited under all eight models; the chain then re-attributes them."""
    url = f"{public_url}/api/attribution/weights/learn"
    return _api_json(client, "POST", url, api_key, "learning the weights")


def reattribute(
    client: httpx.Client, public_url: str, api_key: str, first: date, last: date
) -> int:
    """Re-attribute the orders of days `first` to `last` (`POST /api/recompute`): learning
    re-attributes only its own window, and the demo's older orders need the learned models
    too. The count of orders marked."""
    response = _request(
        client,
        "POST",
        f"{public_url}/api/recompute",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"from": first.isoformat(), "to": last.isoformat()},
    )
    if response.status_code != 200:
        raise DemoError(f"re-attributing answered {response.status_code}: {response.text}")
    return response.json()["marked"]


def _api_json(client: httpx.Client, method: str, url: str, api_key: str, what: str) -> Any:
    """The JSON a call with the tenant's key answers; a DemoError naming `what` unless a 200."""
    response = _request(client, method, url, headers={"Authorization": f"Bearer {api_key}"})
    if response.status_code != 200:
        raise DemoError(f"{what} answered {response.status_code}: {response.text}")
    return response.json()


def _request(client: httpx.Client, method: str, url: str, **options) -> httpx.Response:
    try:
        return client.request(method, url, **options)
    except httpx.HTTPError as exc:
        raise DemoError(f"the API stopped answering ({exc.__class__.__name__}: {exc})") from exc
