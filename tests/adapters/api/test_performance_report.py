"""The performance report driven end to end over HTTP: spend loaded through POST /api/spend,
journeys through campaign-tagged ad URLs collected through POST /api/touchpoints, signed Shopify
orders and a refund through the webhook URL, the chain run; then GET /api/reports/performance at
every level under every rule-based model equals figures computed by hand, and its revenue totals
equal the channel report's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from db_helpers import SHOPIFY_SECRET, create_tenant
from skeldir.adapters.app import create_app
from skeldir.base.config import Settings
from skeldir.base.db import create_worker_pool, owner_connection
from skeldir.domains.attribution.jobs import finish_run, start_run
from skeldir.domains.attribution.recompute import recompute_pending
from skeldir.domains.reporting.refresh import refresh_tenant

RULE_BASED = ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
              "position_based")
WINDOW = {"from": "2024-03-01", "to": "2024-03-31"}

# Ad URLs as docs/spend.md tells a shop to write them, the platforms' macros filled in.
META_A1 = ("https://shop.example/p?utm_source=facebook&utm_medium=paid_social"
           "&utm_campaign=Spring&utm_id=c1&skd_adset=s1&skd_ad=a1&fbclid=F1")
META_A2 = "https://shop.example/p?utm_source=ig&utm_medium=cpc&utm_id=c1&skd_adset=s1&skd_ad=a2"
# Google auto-tagging alone names no campaign: its utm_campaign matches the spend by name.
GOOGLE = "https://shop.example/p?gclid=G1&utm_campaign=brand%20EXACT"
TIKTOK = "https://shop.example/p?ttclid=T1&utm_id=t9&skd_adset=t9s&skd_ad=t9a"
EMAIL = "https://shop.example/p?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
PLAIN = "https://shop.example/p"

# (grain, channel): platform, campaign, ad set, ad, and the channel of its touchpoints.
M1 = ("meta", "c1", "s1", "a1", "paid_social")
M2 = ("meta", "c1", "s1", "a2", "paid_social")
G7 = ("google_ads", "g7", "", "", "paid_search")
T9 = ("tiktok", "t9", "t9s", "t9a", "paid_social")
EM = ("", "", "", "", "email")
DI = ("", "", "", "", "direct")

# Orders: net cents, whether the customer was new (None: no customer), and each model's split
# of the order by hand: grain -> (net cents, millionths of the order). Time decay: the first
# touch of each two-touch path is one half-life (7 days) older than the second, so it weighs
# half as much: 1/3 and 2/3, the odd cent and unit to the larger remainder.
TWO_TOUCH = {
    "1001": (12000, True, M1, G7, (4000, 333333), (8000, 666667)),
    "1003": (4000, False, EM, M2, (1333, 333333), (2667, 666667)),
}


def splits(model: str) -> dict[str, tuple[int, bool | None, dict]]:
    orders = {"1002": (5000, True, {T9: (5000, 10**6)}), "1004": (3000, None, {DI: (3000, 10**6)})}
    for order, (net, new, first, last, decayed_first, decayed_last) in TWO_TOUCH.items():
        split = {
            "first_touch": {first: (net, 10**6)},
            "last_touch": {last: (net, 10**6)},
            "last_non_direct": {last: (net, 10**6)},
            "linear": {first: (net // 2, 500000), last: (net // 2, 500000)},
            "position_based": {first: (net // 2, 500000), last: (net // 2, 500000)},
            "time_decay": {first: decayed_first, last: decayed_last},
        }[model]
        orders[order] = (net, new, split)
    return orders


# Spend by hand, in USD cents: CHF 50.00 at 1.1 is 5500; SEK has no rate that day.
SPEND = {
    ("meta", "c1", "s1", "a1"): 6000,
    ("meta", "c1", "s1", "a2"): 2000,
    ("google_ads", "g7", "", ""): 4000,
    ("tiktok", "t9", "t9s", "t9a"): 5500,
    ("meta", "c2", "", ""): 500,
}
MISSING_RATE = ("microsoft_ads", "m1", "", "")
SPEND_CHANNEL = {"meta": "paid_social", "tiktok": "paid_social", "google_ads": "paid_search",
                 "microsoft_ads": "paid_search"}
NAMES = {"c1": "Spring", "g7": "Brand Exact", "t9": "Launch", "c2": "Retarget", "m1": "Bing"}


def level_key(level: str, platform: str, campaign: str, adset: str, ad: str, channel: str):
    """The row a grain (or a spend row, channel None) counts in, as the report shows it."""
    if level == "channel":
        return (channel or SPEND_CHANNEL[platform],)
    if level == "platform":
        return (platform, channel if not platform else "")
    parts = {"campaign": (platform, campaign), "adset": (platform, campaign, adset),
             "ad": (platform, campaign, adset, ad)}[level]
    return (*parts, channel if not campaign and channel else "")


def expected_rows(model: str, level: str) -> dict[tuple, dict]:
    rows: dict[tuple, dict] = {}

    def row(key):
        return rows.setdefault(key, {"spend": 0, "revenue": 0, "units": 0, "new_units": 0,
                                     "new_revenue": 0, "missing": False})

    for _order, (_net, new, split) in splits(model).items():
        for (platform, campaign, adset, ad, channel), (cents, units) in split.items():
            r = row(level_key(level, platform, campaign, adset, ad, channel))
            r["revenue"] += cents
            r["units"] += units
            if new:
                r["new_units"] += units
                r["new_revenue"] += cents
    for (platform, campaign, adset, ad), cents in SPEND.items():
        row(level_key(level, platform, campaign, adset, ad, None))["spend"] += cents
    row(level_key(level, *MISSING_RATE, None))["missing"] = True
    return rows


def metrics(r: dict) -> dict:
    """The documented definitions, by hand."""
    spend = r["spend"]
    half_up = lambda value: int(value.to_integral_value(ROUND_HALF_UP))  # noqa: E731
    return {
        "spend_cents": spend,
        "revenue_cents": r["revenue"],
        "orders": f"{Decimal(r['units']) / 10**6:.6f}",
        "new_customers": f"{Decimal(r['new_units']) / 10**6:.6f}",
        "new_customer_revenue_cents": r["new_revenue"],
        "roas": (str((Decimal(r["revenue"]) / spend).quantize(Decimal("0.0001"), ROUND_HALF_UP))
                 if spend else None),
        "cpa_cents": half_up(Decimal(spend) * 10**6 / r["units"]) if spend and r["units"] else None,
        "cac_cents": (half_up(Decimal(spend) * 10**6 / r["new_units"])
                      if spend and r["new_units"] else None),
        "rate_missing": r["missing"],
    }


def shown_key(level: str, item: dict) -> tuple:
    fields = {"channel": ("channel",), "platform": ("platform",),
              "campaign": ("platform", "campaign_id"),
              "adset": ("platform", "campaign_id", "adset_id"),
              "ad": ("platform", "campaign_id", "adset_id", "ad_id")}[level]
    values = tuple(item[f] or "" for f in fields)
    if level == "channel":
        return values
    own = item["platform"] if level == "platform" else item["campaign_id"]
    return (*values, "" if own else item["channel"])


# --- the chain ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(database: Settings):
    tenant = create_tenant(database, "performance")
    with owner_connection(database) as conn:
        conn.execute("INSERT INTO fx_rates (day, base, quote, rate) VALUES"
                     " ('2024-03-03', 'CHF', 'USD', 1.1) ON CONFLICT DO NOTHING")
        assert conn.execute("SELECT rate FROM fx_rates WHERE day = '2024-03-03'"
                            " AND base = 'CHF' AND quote = 'USD'").fetchone()[0] == Decimal("1.1")
    # Every case reads the report page by page for one tenant, hundreds of requests within
    # seconds on a fast database: the API's per-tenant rate limit is not what is tested here.
    settings = replace(database, broker_url="memory://", rate_limit_api_per_second=0)
    with TestClient(create_app(settings)) as client:
        admin = {"Authorization": f"Bearer {tenant.api_key}"}
        spend = [
            ("2024-03-03", "meta", "c1", "Spring", "s1", "Lookalike", "a1", "Video", "USD", "40.00"),
            ("2024-03-10", "meta", "c1", "Spring", "s1", "Lookalike", "a1", "Video", "USD", "20.00"),
            ("2024-03-10", "meta", "c1", "Spring", "s1", "Lookalike", "a2", "Carousel", "USD",
             "20.00"),
            ("2024-03-03", "google_ads", "g7", "Brand Exact", None, None, None, None, "USD", "30.00"),
            ("2024-03-10", "google_ads", "g7", "Brand Exact", None, None, None, None, "USD", "10.00"),
            ("2024-03-03", "tiktok", "t9", "Launch", "t9s", "Broad", "t9a", "Clip", "CHF", "50.00"),
            ("2024-03-10", "meta", "c2", "Retarget", None, None, None, None, "USD", "5.00"),
            ("2024-03-10", "microsoft_ads", "m1", "Bing", None, None, None, None, "SEK", "10.00"),
            ("2024-04-01", "meta", "c1", "Spring", "s1", "Lookalike", "a1", "Video", "USD", "99.00"),
        ]
        rows = [{"date": d, "platform": p, "account_id": "acct", "campaign_id": c,
                 "campaign_name": cn, "adset_id": s, "adset_name": sn, "ad_id": a, "ad_name": an,
                 "currency": cur, "spend": amount}
                for d, p, c, cn, s, sn, a, an, cur, amount in spend]
        rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
        loaded = client.post("/api/spend", headers=admin, json={"rows": rows})
        assert loaded.json() == {"accepted": len(rows), "errors": []}, loaded.text

        visits = [
            ("A", META_A1, "2024-03-03T11:00:00Z"), ("A", GOOGLE, "2024-03-10T11:00:00Z"),
            ("B", TIKTOK, "2024-03-09T11:00:00Z"),
            ("C", EMAIL, "2024-03-03T10:00:00Z"), ("C", META_A2, "2024-03-10T10:00:00Z"),
            ("D", PLAIN, "2024-03-10T07:00:00Z"),
        ]
        collected = client.post(
            "/api/touchpoints", headers={"Authorization": f"Bearer {tenant.collect_key}"},
            content=json.dumps({"touchpoints": [
                {"id": uuid.uuid4().hex, "visitor_id": v, "url": url, "occurred_at": at}
                for v, url, at in visits]}))
        assert collected.json()["accepted"] == len(visits), collected.text

        path = urlsplit(tenant.source_url).path

        def deliver(body: dict, topic: str) -> None:
            raw = json.dumps(body).encode()
            signature = base64.b64encode(
                hmac.new(SHOPIFY_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
            answer = client.post(path, content=raw, headers={
                "Content-Type": "application/json", "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": signature})
            assert answer.json()["status"] == "accepted", answer.text

        # Carol's first order, in January (outside the window), makes her March order a
        # returning customer's; 1004 names no customer.
        deliver({"id": 1000, "currency": "USD", "total_price": "9.00",
                 "created_at": "2024-01-05T10:00:00Z", "email": "carol@example.invalid"},
                "orders/create")
        for order, visitor, total, at, email in (
                ("1001", "A", "120.00", "2024-03-10T12:00:00Z", "alice@example.invalid"),
                ("1002", "B", "55.00", "2024-03-10T11:00:00Z", "bob@example.invalid"),
                ("1003", "C", "40.00", "2024-03-10T11:00:00Z", "carol@example.invalid"),
                ("1004", "D", "30.00", "2024-03-10T13:00:00Z", None)):
            deliver({"id": int(order), "currency": "USD", "total_price": total, "created_at": at,
                     "note_attributes": [{"name": "skeldir_visitor_id", "value": visitor}],
                     **({"email": email} if email else {})},
                    "orders/create")
        deliver({"id": 77, "order_id": 1002, "created_at": "2024-03-11T09:00:00Z",
                 "transactions": [{"id": 77, "kind": "refund", "status": "success",
                                   "currency": "USD", "amount": "5.00",
                                   "created_at": "2024-03-11T09:00:00Z"}]}, "refunds/create")
        # New and returning customers, as ingest flagged them from the orders' emails.
        with owner_connection(database) as conn:
            flags = dict(conn.execute(
                "SELECT external_order_id, is_new_customer FROM orders WHERE tenant_id = %s",
                (tenant.tenant_id,)).fetchall())
        assert flags == {"1000": True, "1001": True, "1002": True, "1003": False, "1004": None}
        asyncio.run(_run_chain(database, tenant.tenant_id))
        yield client, {"Authorization": f"Bearer {tenant.api_key}"}


async def _run_chain(database: Settings, tenant_id) -> None:
    pool = await create_worker_pool(database, max_size=2)
    try:
        job = uuid.uuid4()
        await start_run(pool, tenant_id, job)
        outcome = await recompute_pending(pool, tenant_id, batch_size=50)
        await finish_run(pool, tenant_id, job, outcome)
        await refresh_tenant(pool, tenant_id)
        assert not outcome.more_pending
    finally:
        await pool.close()


def report(shop, **params) -> list[dict]:
    client, key = shop
    items, cursor = [], None
    while True:
        query = {**WINDOW, "limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        answer = client.get("/api/reports/performance", params=query, headers=key)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("level", ("channel", "platform", "campaign", "adset", "ad"))
@pytest.mark.parametrize("model", RULE_BASED)
def test_every_level_under_every_rule_based_model_equals_the_hand_computed_figures(
    shop, model, level
):
    items = report(shop, model=model, level=level)
    shown = {shown_key(level, item): item for item in items}
    assert len(shown) == len(items)
    expected = expected_rows(model, level)
    assert set(shown) == set(expected)
    for key, figures in expected.items():
        item = shown[key]
        assert {k: item[k] for k in metrics(figures)} == metrics(figures), (key, item)
        assert item["currency"] == "USD"
        if level in ("campaign", "adset", "ad") and item["campaign_id"]:
            assert item["campaign_name"] == NAMES[item["campaign_id"]]
    # The revenue totals equal the channel report's, per channel at level channel.
    client, key = shop
    summary = client.get("/api/reports/channels/summary", headers=key,
                         params={**WINDOW, "model": model}).json()["items"]
    assert sum(i["revenue_cents"] for i in items) == sum(s["net_cents"] for s in summary) == 24000
    if level == "channel":
        assert {i["channel"]: i["revenue_cents"] for i in items if i["revenue_cents"]} == {
            s["channel"]: s["net_cents"] for s in summary if s["net_cents"]}


def test_the_linear_campaign_rows_as_a_marketer_reads_them(shop):
    rows = {(i["platform"], i["campaign_id"], i["channel"]): i
            for i in report(shop, model="linear", level="campaign")}
    google = rows[("google_ads", "g7", None)]
    assert (google["spend_cents"], google["revenue_cents"], google["orders"], google["roas"],
            google["cpa_cents"], google["cac_cents"]) == (4000, 6000, "0.500000", "1.5000",
                                                          8000, 8000)
    meta = rows[("meta", "c1", None)]
    assert (meta["spend_cents"], meta["revenue_cents"], meta["orders"], meta["new_customers"],
            meta["new_customer_revenue_cents"], meta["roas"], meta["cpa_cents"],
            meta["cac_cents"]) == (8000, 8000, "1.000000", "0.500000", 6000, "1.0000", 8000,
                                   16000)
    tiktok = rows[("tiktok", "t9", None)]
    assert (tiktok["spend_cents"], tiktok["revenue_cents"], tiktok["roas"]) == (5500, 5000,
                                                                                 "0.9091")
    retarget = rows[("meta", "c2", None)]
    assert (retarget["revenue_cents"], retarget["orders"], retarget["roas"],
            retarget["cpa_cents"]) == (0, "0.000000", "0.0000", None)
    bing = rows[("microsoft_ads", "m1", None)]
    assert bing["rate_missing"] and bing["spend_cents"] == 0 and bing["roas"] is None
    email = rows[(None, None, "email")]
    assert (email["spend_cents"], email["revenue_cents"], email["roas"], email["orders"]) == (
        0, 2000, None, "0.500000")


def test_a_currency_asked_for_counts_only_that_currency_unconverted(shop):
    rows = report(shop, model="linear", level="platform", currency="CHF")
    assert [(r["platform"], r["spend_cents"], r["revenue_cents"], r["currency"])
            for r in rows] == [("tiktok", 5000, 0, "CHF")]


def test_bad_parameters_are_refused(shop):
    client, key = shop
    for params in ({**WINDOW, "model": "linear", "level": "keyword"},
                   {**WINDOW, "model": "nope"},
                   {**WINDOW, "model": "linear", "cursor": "bm90IGEgY3Vyc29y"},
                   {"from": "2024-03-31", "to": "2024-03-01", "model": "linear"}):
        answer = client.get("/api/reports/performance", params=params, headers=key)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get("/api/reports/performance", params={**WINDOW, "model": "linear"}
                      ).status_code == 401


def test_the_exports_hold_the_report_rows(shop):
    import io

    import pyarrow.parquet as pq

    client, key = shop
    items = report(shop, model="linear", level="ad")
    params = {**WINDOW, "model": "linear", "level": "ad"}
    csv_file = client.get("/api/exports/performance.csv", params=params, headers=key)
    assert csv_file.status_code == 200, csv_file.text
    lines = csv_file.text.splitlines()
    assert lines[0].startswith("model,level,channel,platform,campaign_id,campaign_name")
    assert len(lines) == 1 + len(items)
    assert '"linear","ad","","meta","c1","Spring","s1","Lookalike","a1","Video","USD",6000,6000,' \
        '0.500000,0.500000,6000,1.0000,12000,12000,False' in lines
    parquet = client.get("/api/exports/performance.parquet", params=params, headers=key)
    table = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
    assert [(r["platform"], r["campaign_id"], r["adset_id"], r["ad_id"], r["revenue_cents"],
             r["spend_cents"], str(r["orders"]), None if r["roas"] is None else str(r["roas"]))
            for r in table] == [
        (i["platform"], i["campaign_id"], i["adset_id"], i["ad_id"], i["revenue_cents"],
         i["spend_cents"], i["orders"], i["roas"]) for i in items]
    assert client.get("/api/exports/performance.csv", params={**WINDOW, "model": "linear"}
                      ).status_code == 401


@pytest.mark.parametrize("model", ("linear", "time_decay"))
def test_drilling_down_from_a_channel_to_its_ads_keeps_its_totals(shop, model):
    channels = {i["channel"]: i for i in report(shop, model=model, level="channel")}
    for channel in ("paid_social", "paid_search"):
        for level in ("platform", "campaign", "adset", "ad"):
            rows = report(shop, model=model, level=level, channel=channel)
            for field in ("spend_cents", "revenue_cents", "new_customer_revenue_cents"):
                assert sum(r[field] for r in rows) == channels[channel][field], (channel, level)
            assert sum(Decimal(r["orders"]) for r in rows) == Decimal(channels[channel]["orders"])
    meta_ads = report(shop, model=model, level="ad", platform="meta", campaign_id="c1")
    assert [(r["adset_id"], r["ad_id"], r["spend_cents"]) for r in meta_ads] == [
        ("s1", "a1", 6000), ("s1", "a2", 2000)]
    assert sum(r["revenue_cents"] for r in meta_ads) == sum(
        r["revenue_cents"] for r in report(shop, model=model, level="campaign", platform="meta")
        if r["campaign_id"] == "c1")
