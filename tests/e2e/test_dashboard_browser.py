"""The dashboard in headless Chromium against a real running system: a key typed in, exact
channel totals, every model compared, a dead event replayed from the page; wrong keys refused;
nothing fetched from any other origin and no Content-Security-Policy violation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from skeldir.base.config import Settings
from skeldir.base.crypto import secret_box

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed: apt install chromium", allow_module_level=True)

pytestmark = pytest.mark.e2e

SECRET = "shpss_dashboard"
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
# Three orders on three recent days (inside the page's default 30 days), two currencies, each
# stitched by its checkout token to the visitor whose touchpoints precede it.
ORDERS = [
    {"id": 880001, "currency": "USD", "total_price": "100.00", "days_ago": 3, "visitor": "v-a",
     "visits": [("https://shop.example/?utm_source=google&utm_medium=cpc&gclid=GA1", None),
                ("https://shop.example/?utm_source=newsletter&utm_medium=email", None)]},
    {"id": 880002, "currency": "USD", "total_price": "30.00", "days_ago": 2, "visitor": "v-b",
     "visits": [("https://shop.example/blog", "https://www.facebook.com/")]},
    {"id": 880003, "currency": "JPY", "total_price": "1200", "days_ago": 1, "visitor": "v-c",
     "visits": [("https://shop.example/?utm_source=google&utm_medium=cpc&gclid=GC1", None)]},
]
# Linear splits order 880001 evenly between its two channels.
EXPECTED_LINEAR = {("USD", "paid_search"): 5000, ("USD", "email"): 5000,
                   ("USD", "organic_social"): 3000, ("JPY", "paid_search"): 1200}
MODELS = ["first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
          "position_based", "markov", "shapley"]
RULE_BASED_MODELS = set(MODELS[:6])
# A delivery the current parser accepts, as if an older parser had dead-lettered it.
REVIVED_ORDER = {"id": 880099, "currency": "USD", "total_price": "20.00"}


def poll(what: str, observe, done, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        last = observe()
        if done(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout:.0f}s; last seen: {last!r}")
        time.sleep(interval)


def signed_headers(body: bytes) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": digest}


def order_body(order: dict, ordered_at: datetime, checkout_token: str | None = None) -> bytes:
    fields = {"id": order["id"], "currency": order["currency"], "total_price": order["total_price"],
              "created_at": ordered_at.isoformat()}
    if checkout_token:
        fields["checkout_token"] = checkout_token
    return json.dumps(fields).encode()


def api_get(system, key: str, path: str, **params) -> httpx.Response:
    return httpx.get(f"{system.api_url}{path}", params=params, timeout=10,
                     headers={"Authorization": f"Bearer {key}"})


def summary_totals(system, key: str, start: str, end: str) -> dict | None:
    response = api_get(system, key, "/api/reports/channels/summary", model="linear",
                       **{"from": start, "to": end})
    if response.status_code != 200:
        return {"status": response.status_code, "body": response.text[:300]}
    return {(i["currency"], i["channel"]): i["net_cents"] for i in response.json()["items"]}


@pytest.fixture(scope="module")
def shop(system):
    tenant = system.cli("tenant", "create", "dashboard shop", "--json")
    source = system.cli("source", "add", "--tenant", tenant["tenant_id"], "--provider", "shopify",
                        "--secret", SECRET, "--json")
    shop = {**tenant, **source}
    touchpoints, bodies = [], []
    for order in ORDERS:
        ordered_at = TODAY - timedelta(days=order["days_ago"]) + timedelta(hours=12)
        token = f"chk-{order['id']}"
        for index, (url, referrer) in enumerate(order["visits"]):
            last = index == len(order["visits"]) - 1
            touchpoints.append({
                "id": f"{order['id']}-{index}", "visitor_id": order["visitor"], "url": url,
                "occurred_at": (ordered_at - timedelta(hours=6 - index)).isoformat(),
                **({"referrer": referrer} if referrer else {}),
                **({"checkout_token": token} if last else {})})
        bodies.append(order_body(order, ordered_at, token))
    response = httpx.post(f"{system.api_url}/api/touchpoints", json={"touchpoints": touchpoints},
                          headers={"Authorization": f"Bearer {shop['collect_key']}"}, timeout=10)
    assert response.json()["accepted"] == len(touchpoints), response.text
    for body in bodies:
        response = httpx.post(shop["url"], content=body, headers=signed_headers(body), timeout=10)
        assert response.json()["status"] == "accepted", response.text
    return shop


@pytest.fixture(scope="module")
def browser() -> Browser:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


class Watched:
    """A page whose requests and console errors are recorded for the end of the test."""

    def __init__(self, browser: Browser, api_url: str) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(api_url))
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.refused: list[tuple[int, str]] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("response",
                     lambda r: r.status >= 400 and self.refused.append((r.status, r.url)))

    def assert_only_own_origin(self) -> None:
        foreign = [url for url in self.requests if not url.startswith(self.origin + "/")]
        assert not foreign, f"requests to other origins: {foreign}"
        assert not [url for url in self.requests if "skd_" in url], "a key was put in a URL"


def insert_dead_event(system, shop, body: bytes, reason: str) -> str:
    """A dead_events row as the webhook edge writes one: the body encrypted for the tenant."""
    tenant_id = uuid.UUID(shop["tenant_id"])
    settings = Settings(data_dir=system.data_dir, secret_key=system.env.get("SKELDIR_SECRET_KEY"))
    ciphertext = secret_box(settings).encrypt(body, context=tenant_id.bytes)
    headers = {k.lower(): v for k, v in signed_headers(body).items()}
    with psycopg.connect(system.ready["owner_database_url"]) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant_id),))
        row = conn.execute(
            "INSERT INTO dead_events (tenant_id, source_id, provider, topic, reason, body_sha256,"
            " body_ciphertext, headers) VALUES (%s, %s, 'shopify', 'orders/create', %s, %s, %s,"
            " %s) RETURNING dead_event_id",
            (tenant_id, shop["source_id"], reason, hashlib.sha256(body).digest(), ciphertext,
             json.dumps(headers)),
        ).fetchone()
    return str(row[0])


def channel_totals(page: Page) -> dict[tuple[str, str], int]:
    rows = page.eval_on_selector_all(
        "#chart li.total[data-channel]",
        "items => items.map(i => [i.dataset.currency, i.dataset.channel, i.dataset.netCents])")
    return {(currency, channel): int(cents) for currency, channel, cents in rows}


def test_an_admin_sees_exact_totals_every_model_and_replays_a_dead_event(system, shop, browser):
    start, end = (TODAY - timedelta(days=29)).date().isoformat(), TODAY.date().isoformat()
    poll("linear totals reported", lambda: summary_totals(system, shop["api_key"], start, end),
         lambda totals: totals == EXPECTED_LINEAR)
    revived = order_body(REVIVED_ORDER, TODAY - timedelta(days=1) + timedelta(hours=13))
    dead_event_id = insert_dead_event(system, shop, revived, "unsupported order shape")

    watched = Watched(browser, system.api_url)
    page = watched.page
    page.goto(f"{system.api_url}/")
    page.fill("#api-key", shop["api_key"])
    page.click("#login-submit")
    expect(page.locator("#session-scope")).to_have_text("admin key")
    expect(page.locator("#chart li.total[data-channel]")).to_have_count(len(EXPECTED_LINEAR))
    totals = channel_totals(page)
    assert totals == EXPECTED_LINEAR
    assert totals == summary_totals(system, shop["api_key"], start, end)
    expect(page.locator('#chart li.total[data-channel="email"]')).to_contain_text("USD 50.00")
    expect(page.locator('#chart li.total[data-currency="JPY"][data-channel]')).to_contain_text(
        "JPY 1,200")
    expect(page.locator("#reports-fresh")).to_have_text("Fresh")

    comparison = api_get(system, shop["api_key"], "/api/reports/models",
                         **{"from": start, "to": end}).json()
    assert RULE_BASED_MODELS <= set(comparison["models"]) <= set(MODELS)
    expected_cells = {(row["currency"], row["channel"], model): cents
                      for row in comparison["items"] for model, cents in row["net_cents"].items()}
    for currency in ("USD", "JPY"):
        header = page.eval_on_selector_all(
            f'#models table[data-currency="{currency}"] thead th[data-model]',
            "cells => cells.map(c => c.dataset.model)")
        assert header == MODELS, "a column for every model, in the selector's order"
    cells = page.eval_on_selector_all(
        "#models table tbody tr[data-channel] td[data-net-cents]",
        "cells => cells.map(c => [c.closest('table').dataset.currency,"
        " c.parentElement.dataset.channel, c.dataset.model, Number(c.dataset.netCents)])")
    assert {(cur, ch, model): cents for cur, ch, model, cents in cells} == expected_cells
    assert {(cur, ch): cents for (cur, ch, model), cents in expected_cells.items()
            if model == "linear"} == EXPECTED_LINEAR

    replay = page.locator(f'button.replay[data-dead-event-id="{dead_event_id}"]')
    expect(replay).to_be_visible()
    replay.click()
    notice = page.locator("#notice")
    expect(notice).to_have_attribute("data-outcome", "replayed")
    expect(notice).to_contain_text(dead_event_id)
    expect(page.locator("#events tbody tr", has_text=str(REVIVED_ORDER["id"]))).to_have_count(1)
    expect(replay).to_have_count(0)
    expect(page.locator("#dead-count")).to_have_text("0")

    page.screenshot(path="/tmp/skb-dashboard.png", full_page=True)
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    watched.assert_only_own_origin()
    assert watched.errors == [], f"console errors (a CSP violation is one); {watched.refused}"


def test_wrong_keys_are_refused_and_a_read_key_arrives_in_the_fragment(system, shop, browser):
    watched = Watched(browser, system.api_url)
    page = watched.page
    page.goto(f"{system.api_url}/")
    page.fill("#api-key", "skd_" + "0" * 32 + "_wrong")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("401")
    expect(page.locator("#app")).to_be_hidden()
    page.fill("#api-key", shop["collect_key"])
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("403")

    watched.assert_only_own_origin()
    # The refused logins are logged by Chromium as failed loads; nothing else may be.
    refused = [e for e in watched.errors if "status of 401" in e or "status of 403" in e]
    assert watched.errors == refused and len(refused) == 2, (watched.errors, watched.refused)

    created = httpx.post(f"{system.api_url}/api/keys", json={"scope": "read"}, timeout=10,
                         headers={"Authorization": f"Bearer {shop['api_key']}"})
    read_key = created.json()["api_key"]
    dead_event_id = insert_dead_event(system, shop, b'{"not": "an order"}', "no order id")
    # A fresh tab, as when the link `skeldir demo` prints is opened.
    linked = Watched(browser, system.api_url)
    linked.page.goto(f"{system.api_url}/#key={read_key}")
    expect(linked.page.locator("#session-scope")).to_have_text("read key")
    assert "key=" not in linked.page.url, "the key is taken out of the address bar"
    row = linked.page.locator(f'#dead-events tbody tr[data-dead-event-id="{dead_event_id}"]')
    expect(row).to_contain_text("no order id")
    expect(linked.page.locator("#dead-events button.replay")).to_have_count(0)
    linked.assert_only_own_origin()
    assert linked.errors == [], (linked.errors, linked.refused)


def test_learned_weights_are_shown_once_learned(system, shop, browser):
    start, end = (TODAY - timedelta(days=29)).date().isoformat(), TODAY.date().isoformat()
    learned = httpx.post(f"{system.api_url}/api/attribution/weights/learn", timeout=30,
                         headers={"Authorization": f"Bearer {shop['api_key']}"})
    assert learned.status_code == 200, learned.text
    poll("markov and shapley reported",
         lambda: api_get(system, shop["api_key"], "/api/reports/models",
                         **{"from": start, "to": end}).json()["models"],
         lambda models: models == MODELS)
    expected = {w["model"]: w for w in learned.json()["learned"]}

    watched = Watched(browser, system.api_url)
    page = watched.page
    page.goto(f"{system.api_url}/#key={shop['api_key']}")
    expect(page.locator("#weights table thead th[data-model]")).to_have_count(2)
    cells = page.eval_on_selector_all(
        "#weights tbody tr[data-channel] td[data-model]",
        "cells => cells.map(c => [c.dataset.model, c.parentElement.dataset.channel,"
        " Number(c.dataset.weight)])")
    shown = {(model, channel): weight for model, channel, weight in cells}
    for model, weights in expected.items():
        for channel, weight in weights["weights"].items():
            assert shown[(model, channel)] == pytest.approx(weight)
        expect(page.locator(f'#weights p[data-model="{model}"]')).to_contain_text(
            f"v{weights['version']}")
    watched.assert_only_own_origin()
    assert watched.errors == [], (watched.errors, watched.refused)


def test_a_link_with_another_tenants_key_asks_before_switching(system, shop, browser):
    other = system.cli("tenant", "create", "someone else's shop", "--json")
    created = httpx.post(f"{system.api_url}/api/keys", json={"scope": "read"}, timeout=10,
                         headers={"Authorization": f"Bearer {shop['api_key']}"})
    own_read_key = created.json()["api_key"]
    watched = Watched(browser, system.api_url)
    page = watched.page
    page.goto(f"{system.api_url}/#key={shop['api_key']}")
    tenant = page.locator("#session-tenant")
    expect(tenant).to_have_text(f"tenant {shop['tenant_id']}")

    # Another tenant's link, opened in this tab: the page asks, and staying changes nothing.
    page.evaluate("key => { location.hash = 'key=' + key; }", other["api_key"])
    prompt = page.locator("#switch")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text(other["tenant_id"])
    expect(tenant).to_have_text(f"tenant {shop['tenant_id']}")
    assert "key=" not in page.url
    page.click("#switch-no")
    expect(prompt).to_be_hidden()
    expect(tenant).to_have_text(f"tenant {shop['tenant_id']}")
    assert page.evaluate("sessionStorage.getItem('skeldir.apiKey')") == shop["api_key"]

    # A reload with the key stored and another tenant's key in the link asks too.
    page.goto(f"{system.api_url}/?again#key={other['api_key']}")
    expect(prompt).to_be_visible()
    expect(tenant).to_have_text(f"tenant {shop['tenant_id']}")
    page.click("#switch-yes")
    expect(tenant).to_have_text(f"tenant {other['tenant_id']}")
    expect(prompt).to_be_hidden()

    # A key of the tenant already shown switches without asking (only the scope changes).
    page.goto(f"{system.api_url}/#key={shop['api_key']}")
    page.click("#switch-yes")
    expect(tenant).to_have_text(f"tenant {shop['tenant_id']}")
    page.evaluate("key => { location.hash = 'key=' + key; }", own_read_key)
    expect(page.locator("#session-scope")).to_have_text("read key")
    expect(prompt).to_be_hidden()
    watched.assert_only_own_origin()
    assert watched.errors == [], (watched.errors, watched.refused)
