"""The reports API over HTTP (the real app on real PostgreSQL, data from the real recompute):
keyset pages that walk every row once, problem+json errors, read scope, tenant isolation, the
model comparison's exact-sum law, and the OpenAPI document and docs page."""

from __future__ import annotations

import base64

from report_data import ORDERS, WINDOW

PROBLEM = "application/problem+json"
RULE_BASED = ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
              "position_based")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def get(client, key, path: str, **params):
    response = client.get(path, params=params, headers=bearer(key) if key else {})
    return response


def walk(client, key, path: str, limit: int, **params) -> tuple[list, int]:
    """Every item of a paged list, following next_cursor; and how many pages it took."""
    items, cursor, pages = [], None, 0
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = get(client, key, path, **query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "the walk does not end"


def assert_problem(response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"]


def test_channel_pages_walk_every_row_once(client, data):
    key = data.shop.api_key
    whole = get(client, key, "/api/attribution/channels", model="linear", **WINDOW).json()["rows"]
    items, pages = walk(client, key, "/api/reports/channels", 3, model="linear", **WINDOW)
    assert pages > 3
    assert items == whole, "a walk in small pages is the unpaged list, in order"
    keys = [(r["day"], r["currency"], r["channel"]) for r in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {r["channel"] for r in items} == {"paid_search", "email", "organic_social"}
    assert {r["currency"] for r in items} == {"USD", "EUR"}

    usd, _ = walk(client, key, "/api/reports/channels", 2, model="linear", currency="USD",
                  **WINDOW)
    assert usd == [r for r in whole if r["currency"] == "USD"]


def test_daily_revenue_pages_walk_every_row_once_and_keep_the_old_key(client, data):
    key = data.shop.api_key
    items, pages = walk(client, key, "/api/reports/daily-revenue", 2, **WINDOW)
    assert pages > 2
    keys = [(r["day"], r["currency"]) for r in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    net = {}
    for r in items:
        net[r["currency"]] = net.get(r["currency"], 0) + r["net_cents"]
    assert net == data.net_cents
    assert sum(r["orders"] for r in items) == ORDERS

    first = get(client, key, "/api/reports/daily-revenue", limit=2, **WINDOW).json()
    assert first["days"] == first["items"] == items[:2]
    old_client = get(client, key, "/api/reports/daily-revenue", **WINDOW).json()
    assert old_client["days"] == items and old_client["next_cursor"] is None


def test_bad_cursors_and_parameters_are_problems(client, data):
    key = data.shop.api_key
    channels = "/api/reports/channels"
    revenue_cursor = get(client, key, "/api/reports/daily-revenue", limit=1,
                         **WINDOW).json()["next_cursor"]
    not_a_day = base64.urlsafe_b64encode(b'["soon","USD","email"]').decode().rstrip("=")
    numbers = base64.urlsafe_b64encode(b'["2026-01-10",1,2]').decode().rstrip("=")
    for cursor in ("nope!", "x" * 2000, revenue_cursor, not_a_day, numbers):
        assert_problem(get(client, key, channels, model="linear", cursor=cursor, **WINDOW), 400)
    assert_problem(get(client, key, "/api/reports/daily-revenue", cursor="%%", **WINDOW), 400)

    assert_problem(get(client, key, channels, model="last_click", **WINDOW), 400)
    assert_problem(get(client, key, "/api/reports/channels/summary", model="nope", **WINDOW), 400)
    assert_problem(get(client, key, "/api/reports/models", **{"from": "2026-02-01",
                                                              "to": "2026-01-01"}), 400)
    days_366 = {"from": "2025-01-01", "to": "2026-01-01"}
    assert get(client, key, "/api/reports/daily-revenue", **days_366).status_code == 200
    days_367 = {"from": "2025-01-01", "to": "2026-01-02"}
    assert_problem(get(client, key, "/api/reports/daily-revenue", **days_367), 400)
    for not_a_day in ("0", "1700000000", "2026-01-01T00:00:00"):
        assert_problem(get(client, key, "/api/reports/daily-revenue",
                           **{"from": not_a_day, "to": "2026-01-02"}), 422)
    assert_problem(get(client, key, channels, model="linear", limit=0, **WINDOW), 422)
    assert_problem(get(client, key, channels, model="linear", limit=1001, **WINDOW), 422)
    assert_problem(get(client, key, channels, model="linear", currency="usd", **WINDOW), 422)
    assert_problem(get(client, key, "/api/reports/orders/shopify/404404"), 404)


REPORTS = (
    ("/api/reports/channels", {"model": "linear", **WINDOW}),
    ("/api/reports/channels/summary", {"model": "linear", **WINDOW}),
    ("/api/reports/models", WINDOW),
    ("/api/reports/daily-revenue", WINDOW),
    ("/api/reports/orders/shopify/5000", {}),
)


def test_reports_need_a_read_or_admin_key(client, data):
    read_key = client.post("/api/keys", json={"scope": "read"},
                           headers=bearer(data.shop.api_key)).json()["api_key"]
    for path, params in REPORTS:
        assert_problem(get(client, None, path, **params), 401)
        assert_problem(get(client, data.shop.collect_key, path, **params), 403)
        assert_problem(get(client, data.shop.webhook_key, path, **params), 403)
        assert get(client, read_key, path, **params).status_code == 200, path
    # The key is checked before the parameters: without one, nothing is learnt from them.
    assert_problem(get(client, None, "/api/reports/channels", model="nope", **WINDOW), 401)


def test_another_tenant_sees_only_its_own_order(client, data):
    key = data.other.api_key
    own_net = 1000 + 101 * 99  # its one order, organic social, USD (see report_data)
    items, _ = walk(client, key, "/api/reports/channels", 1, model="linear", **WINDOW)
    assert [(r["channel"], r["currency"], r["net_cents"]) for r in items] == [
        ("organic_social", "USD", own_net)]
    summary = get(client, key, "/api/reports/channels/summary", model="linear",
                  **WINDOW).json()["items"]
    assert [(r["channel"], r["orders"]) for r in summary] == [("organic_social", 1)]
    models = get(client, key, "/api/reports/models", **WINDOW).json()
    assert [t["net_cents"]["linear"] for t in models["totals"]] == [own_net]
    revenue = get(client, key, "/api/reports/daily-revenue", **WINDOW).json()["items"]
    assert [(r["currency"], r["net_cents"]) for r in revenue] == [("USD", own_net)]
    assert_problem(get(client, key, "/api/reports/orders/shopify/5000"), 404)
    # And the shop sees nothing of it.
    assert_problem(get(client, data.shop.api_key, "/api/reports/orders/shopify/5099"), 404)


def test_every_model_splits_the_same_net_revenue(client, data):
    body = get(client, data.shop.api_key, "/api/reports/models", **WINDOW).json()
    assert body["models"] == list(RULE_BASED)
    totals = {t["currency"]: t for t in body["totals"]}
    assert set(totals) == set(data.net_cents)
    for currency, total in totals.items():
        assert set(total["net_cents"].values()) == {data.net_cents[currency]}, total
        assert len(set(total["revenue_cents"].values())) == 1
        assert len(set(total["refunds_cents"].values())) == 1
    for model in body["models"]:
        for currency, net in data.net_cents.items():
            assert sum(i["net_cents"][model] for i in body["items"]
                       if i["currency"] == currency) == net
    # Models disagree about channels, not about the total.
    search = next(i for i in body["items"] if (i["channel"], i["currency"]) == ("paid_search",
                                                                               "USD"))
    assert search["net_cents"]["first_touch"] != search["net_cents"]["last_touch"]

    revenue = get(client, data.shop.api_key, "/api/reports/daily-revenue", **WINDOW).json()
    by_currency = {}
    for r in revenue["items"]:
        by_currency[r["currency"]] = by_currency.get(r["currency"], 0) + r["net_cents"]
    assert by_currency == data.net_cents, "the comparison agrees with the daily revenue report"


def test_the_channel_summary_adds_up_the_days(client, data):
    key = data.shop.api_key
    for model in ("first_touch", "time_decay"):
        days, _ = walk(client, key, "/api/reports/channels", 1000, model=model, **WINDOW)
        summed: dict[tuple, list[int]] = {}
        for r in days:
            row = summed.setdefault((r["channel"], r["currency"]), [0, 0, 0, 0])
            for index, field in enumerate(("revenue_cents", "refunds_cents", "net_cents",
                                           "orders")):
                row[index] += r[field]
        summary = get(client, key, "/api/reports/channels/summary", model=model,
                      **WINDOW).json()
        assert summary["model"] == model
        assert {(r["channel"], r["currency"]): [r["revenue_cents"], r["refunds_cents"],
                                                r["net_cents"], r["orders"]]
                for r in summary["items"]} == summed


def test_an_order_explained_under_reports_and_attribution_alike(client, data):
    key = data.shop.api_key
    explained = get(client, key, "/api/reports/orders/shopify/5002").json()
    assert explained == get(client, key, "/api/attribution/orders/shopify/5002").json()
    assert explained["revenue_cents"] == 1000 + 101 * 2
    assert [t["channel"] for t in explained["path"]] == ["organic_social", "paid_search", "email"]
    assert set(explained["models"]) == set(RULE_BASED)
    for model, credits in explained["models"].items():
        assert credits["is_balanced"] and credits["allocated_cents"] == explained["revenue_cents"]
        assert sum(t["credits"][model] for t in explained["path"]) == explained["revenue_cents"]


def test_openapi_documents_every_report_and_export(client):
    spec = client.get("/openapi.json").json()
    operations = [(path, op) for path, ops in spec["paths"].items() for op in ops.values()
                  if path.startswith(("/api/reports", "/api/exports"))]
    # The spend report is the eighth; the cohorts and the performance report, each with its
    # file, are the rest.
    assert len(operations) == 12
    for path, op in operations:
        assert op.get("summary"), path
        for parameter in op.get("parameters", []):
            assert parameter.get("description") or parameter["in"] == "path", (path, parameter)
        for status in ("400", "401", "403"):
            if status == "400" and "/orders/" in path:
                continue
            assert PROBLEM in op["responses"][status]["content"], (path, status)
        success = op["responses"]["200"]["content"]
        if path.startswith("/api/reports"):
            assert success["application/json"]["schema"]["$ref"], path
        else:
            assert {"text/csv; charset=utf-8", "application/vnd.apache.parquet"} <= set(success)
    page = spec["components"]["schemas"]["ChannelPage"]
    assert {"model", "from", "to", "items", "next_cursor"} <= set(page["properties"])


def test_the_docs_page_loads_nothing_from_outside(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = client.get("/docs.js")
    assert script.status_code == 200 and b"/openapi.json" in script.content
    for body in (page.text, script.text):
        assert "http://" not in body and "https://" not in body and "//cdn" not in body
    assert client.get("/redoc").status_code == 404


def test_daily_revenue_in_the_reporting_currency_is_null_until_every_entry_converts(client, data):
    """No EUR rate is loaded: the EUR rows' reporting figures are unknown, never 0."""
    items, _ = walk(client, data.shop.api_key, "/api/reports/daily-revenue", 50, **WINDOW)
    reporting = ("gross_reporting_cents", "refunds_reporting_cents",
                 "cancellations_reporting_cents", "net_reporting_cents")
    eur = [r for r in items if r["currency"] == "EUR"]
    usd = [r for r in items if r["currency"] == "USD"]
    assert eur and usd
    for row in eur:
        assert row["unconverted_entries"] > 0
        assert all(row[field] is None for field in reporting), row
    for row in usd:
        assert row["unconverted_entries"] == 0
        assert row["net_reporting_cents"] == row["net_cents"], row
    schema = client.get("/openapi.json").json()["components"]["schemas"]["DailyRevenue"]
    assert all(field not in schema.get("required", []) or "null" in str(schema["properties"][field])
               for field in reporting)
