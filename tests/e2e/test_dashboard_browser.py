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
from urllib.parse import parse_qsl, urlsplit

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
# Ad spend beside the orders: USD needs no rate; EUR has none loaded, so it stays unconverted.
SPEND = [
    {"days_ago": 3, "platform": "google_ads", "account_id": "123-456-7890", "campaign_id": "g1",
     "campaign_name": "Pens", "currency": "USD", "spend": "40.00"},
    {"days_ago": 3, "platform": "meta", "account_id": "act_1", "campaign_id": "m1",
     "campaign_name": "Spring", "currency": "USD", "spend": "15.00"},
    {"days_ago": 2, "platform": "tiktok", "account_id": "tt_1", "campaign_id": "t1",
     "campaign_name": "Creators", "currency": "EUR", "spend": "10.00"},
]
# The converted view under linear, in USD cents: (spend, net revenue) per channel. Google Ads
# clicks are paid search, Meta's and TikTok's paid social; the JPY order has no rate either.
EXPECTED_CONVERTED = {"paid_search": (4000, 5000), "paid_social": (1500, 0),
                      "email": (0, 5000), "organic_social": (0, 3000)}
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
    spend = [{**{k: v for k, v in row.items() if k != "days_ago"},
              "date": (TODAY - timedelta(days=row["days_ago"])).date().isoformat()}
             for row in SPEND]
    response = httpx.post(f"{system.api_url}/api/spend", json={"rows": spend}, timeout=10,
                          headers={"Authorization": f"Bearer {shop['api_key']}"})
    assert response.status_code == 200, response.text
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
    check_spend_view(system, page)

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


def check_spend_view(system, page: Page) -> None:
    """The converted view: spend, net revenue and ROAS per channel in USD, what has no rate
    listed apart, the headings sorting the table, and ROAS per day on the day with spend."""
    table = page.locator("#spend-channels")
    expect(table.locator("tbody tr[data-channel]")).to_have_count(len(EXPECTED_CONVERTED))
    rows = page.eval_on_selector_all(
        "#spend-channels tbody tr[data-channel]",
        "rows => rows.map(r => [r.dataset.channel,"
        " Number(r.querySelector('[data-key=spend]').dataset.cents),"
        " Number(r.querySelector('[data-key=revenue]').dataset.cents),"
        " r.querySelector('[data-key=roas]').dataset.roas])")
    assert {ch: (spend, revenue) for ch, spend, revenue, _ in rows} == EXPECTED_CONVERTED
    assert {ch: roas for ch, _, _, roas in rows} == {
        "paid_search": "1.25", "paid_social": "0", "email": "", "organic_social": ""}
    assert [ch for ch, *_ in rows][0] == "paid_search", "sorted by spend, highest first"
    expect(table.locator("tr.sum [data-key=spend]")).to_have_text("55.00")
    expect(table.locator("tr.sum [data-key=revenue]")).to_have_text("130.00")
    expect(page.locator("#spend-currency")).to_have_text("· USD")
    expect(table.locator('tr[data-channel="paid_search"] [data-key=roas]')).to_have_text("1.25×")
    unconverted = page.locator("#spend-unconverted")
    expect(unconverted).to_contain_text("EUR 10.00 of spend")
    expect(unconverted).to_contain_text("JPY 1,200 of revenue")

    table.locator("thead th[data-key=channel]").click()
    expect(table).to_have_attribute("data-sort", "channel")
    expect(table.locator("tbody tr").first).to_have_attribute("data-channel", "email")
    table.locator("thead th[data-key=channel]").click()
    expect(table.locator("tbody tr").first).to_have_attribute("data-channel", "paid_social")

    spend_day = (TODAY - timedelta(days=3)).date().isoformat()
    points = page.eval_on_selector_all(
        "#roas-chart circle[data-day]",
        "points => points.map(p => [p.dataset.day, p.dataset.kind,"
        " Number(p.dataset.spendCents), Number(p.dataset.revenueCents)])")
    # Order 880001 (USD 100.00) on that day, half of it paid search under linear.
    assert sorted(map(tuple, points)) == [(spend_day, "blended", 5500, 10000),
                              (spend_day, "paid", 5500, 5000)]
    performance = "/api/reports/performance" in httpx.get(
        f"{system.api_url}/openapi.json", timeout=10).json()["paths"]
    if performance:
        expect(page.locator("#drill")).to_be_visible()
    else:
        # No performance report on this server: the drill-down is not offered, and not asked.
        expect(page.locator("#drill")).to_be_hidden()


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


def performance_row(channel: str, campaign: str = "", adset: str = "", ad: str = "",
                    spend: int = 0, revenue: int = 0) -> dict:
    """A row of GET /api/reports/performance as its response contract states it."""
    return {"channel": channel, "platform": "meta" if campaign else None,
            "campaign_id": campaign or None, "campaign_name": campaign and f"Campaign {campaign}",
            "adset_id": adset or None, "adset_name": adset and f"Ad set {adset}",
            "ad_id": ad or None, "ad_name": ad and f"Ad {ad}",
            "spend_cents": spend, "revenue_cents": revenue, "orders": "1.5", "new_customers": "1",
            "new_customer_revenue_cents": revenue // 2,
            "roas": f"{revenue / spend:.4f}" if spend else None,
            "cpa_cents": spend * 2 // 3 if spend else None, "cac_cents": spend or None}


PERFORMANCE = {
    "channel": [performance_row("paid_social", spend=3000, revenue=9000),
                performance_row("email", revenue=4000)],
    "campaign": [performance_row("paid_social", "c1", spend=2000, revenue=7000),
                 performance_row("paid_social", "c2", spend=1000, revenue=2000),
                 performance_row("paid_search", "c9", spend=500, revenue=100)],
    "adset": [performance_row("paid_social", "c1", "s1", spend=1500, revenue=6000),
              performance_row("paid_social", "c1", "s2", spend=500, revenue=1000),
              performance_row("paid_social", "c2", "s3", spend=1000, revenue=2000)],
    "ad": [performance_row("paid_social", "c1", "s1", "a1", spend=1500, revenue=6000),
           performance_row("paid_social", "c1", "s2", "a2", spend=500, revenue=1000)],
}


def test_the_campaign_drill_down_reads_the_performance_report_where_the_server_has_one(
        system, shop, browser):
    """The server answers with the performance report's contract (stubbed in the browser, as
    this server may not have the route): channel -> campaign -> ad set -> ad, and back."""
    watched = Watched(browser, system.api_url)
    page = watched.page
    asked: list[dict] = []

    def openapi(route):
        spec = httpx.get(f"{system.api_url}/openapi.json", timeout=10).json()
        spec["paths"].setdefault("/api/reports/performance", {"get": {}})
        route.fulfill(json=spec)

    def performance(route):
        params = dict(parse_qsl(urlsplit(route.request.url).query))
        asked.append(params)
        route.fulfill(json={"model": params["model"], "from": params["from"], "to": params["to"],
                            "level": params["level"], "next_cursor": None,
                            "items": PERFORMANCE[params["level"]]})

    page.route("**/openapi.json", openapi)
    page.route("**/api/reports/performance?*", performance)
    page.goto(f"{system.api_url}/#key={shop['api_key']}")
    drill = page.locator("#drill")
    expect(drill).to_be_visible()
    rows = drill.locator("#drill-rows tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-id", "paid_social")
    expect(rows.first.locator("[data-key=roas]")).to_have_text("3.00×")
    expect(rows.first.locator("[data-key=spend_cents]")).to_have_text("30.00")
    expect(rows.nth(1).locator("[data-key=roas]")).to_have_text("–")

    rows.first.click()
    expect(page.locator("#drill-level")).to_have_text("· campaigns")
    expect(rows).to_have_count(2)
    assert page.eval_on_selector_all("#drill-rows tbody tr", "r => r.map(x => x.dataset.id)") == [
        "c1", "c2"]
    rows.first.click()
    expect(page.locator("#drill-level")).to_have_text("· ad sets")
    expect(rows).to_have_count(2)
    drill.locator("thead th[data-key=spend_cents]").click()
    expect(rows.first).to_have_attribute("data-id", "s2")
    rows.first.click()
    expect(page.locator("#drill-level")).to_have_text("· ads")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", "a2")
    expect(rows.first).not_to_have_class("drillable")
    expect(drill.locator("#drill-trail button")).to_have_text(
        ["All channels", "paid_social", "Campaign c1", "Ad set s2"])
    drill.locator('#drill-trail button[data-depth="0"]').click()
    expect(page.locator("#drill-level")).to_have_text("· channels")
    assert [a["level"] for a in asked][-5:] == ["channel", "campaign", "adset", "ad", "channel"]
    assert all(a["model"] == "linear" for a in asked)
    watched.assert_only_own_origin()
    assert watched.errors == [], (watched.errors, watched.refused)


def test_revenue_in_another_currency_converts_at_its_days_rate_once_loaded(system, shop, browser,
                                                                         tmp_path):
    """A JPY rate for the JPY order's day: its revenue joins its channel in USD, at the rate the
    order was converted at (JPY 1,200 at 0.0065 is USD 7.80), and leaves the unconverted list."""
    jpy_day = (TODAY - timedelta(days=1)).date().isoformat()
    rates = tmp_path / "rates.csv"
    rates.write_text(f"date,base,quote,rate\n{jpy_day},JPY,USD,0.0065\n")
    system.cli("fx", "load", str(rates), "--json")
    start, end = (TODAY - timedelta(days=29)).date().isoformat(), TODAY.date().isoformat()
    poll("the JPY day converted",
         lambda: [d["gross_reporting_cents"] for d in api_get(
             system, shop["api_key"], "/api/reports/daily-revenue",
             **{"from": start, "to": end}).json()["items"] if d["currency"] == "JPY"],
         lambda converted: converted == [780])

    watched = Watched(browser, system.api_url)
    page = watched.page
    page.goto(f"{system.api_url}/#key={shop['api_key']}")
    paid_search = page.locator('#spend-channels tr[data-channel="paid_search"]')
    expect(paid_search.locator("[data-key=revenue]")).to_have_attribute("data-cents", "5780")
    expect(paid_search.locator("[data-key=roas]")).to_have_text("1.45×")
    unconverted = page.locator("#spend-unconverted")
    expect(unconverted).to_contain_text("EUR 10.00 of spend")
    expect(unconverted).not_to_contain_text("JPY")
    watched.assert_only_own_origin()
    assert watched.errors == [], (watched.errors, watched.refused)
