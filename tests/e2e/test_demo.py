"""`skeldir demo` against a real running system: its 90 days are attributed, the reports show
their revenue in several channels on every day, each currency's net is exactly what the seed's
period holds, and the ads' spend is in the spend ledger to the cent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from e2e_system import RunningSystem, free_port_pair
from skeldir.operations.demo.journeys import DEFAULT_DAYS, demo_period
from skeldir.operations.demo.payloads import SOURCE_OF_CHECKOUT, external_order_id

pytestmark = pytest.mark.e2e

SEED, VISITORS = 7, 60
# From the day before the period's first: the demo may have run just before midnight.
WINDOW_DAYS = DEFAULT_DAYS + 1


@pytest.fixture(scope="module")
def demo_run(system: RunningSystem) -> tuple[dict, datetime, datetime]:
    """What the demo printed, and the times before and after it ran."""
    before = datetime.now(timezone.utc)
    printed = system.cli("demo", "--json", "--visitors", str(VISITORS), "--seed", str(SEED))
    return printed, before, datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def demo(demo_run) -> dict:
    return demo_run[0]


@pytest.fixture(scope="module")
def sent(demo_run):
    """The period as the demo sent it: cut at the moment it ran, between these two."""
    _, before, after = demo_run
    return demo_period(SEED, VISITORS, before), demo_period(SEED, VISITORS, after)


def report(system: RunningSystem, demo: dict, path: str, **params) -> dict:
    today = datetime.now(timezone.utc).date()
    window = {"from": (today - timedelta(days=WINDOW_DAYS)).isoformat(), "to": today.isoformat()}
    response = httpx.get(
        f"{system.api_url}{path}",
        params={**window, **params},
        timeout=10,
        headers={"Authorization": f"Bearer {demo['api_key']}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_demo_prints_exactly_the_tenant_its_key_and_the_dashboard(system, demo):
    assert set(demo) == {"tenant_id", "api_key", "dashboard_url"}
    assert demo["dashboard_url"] == f"{system.api_url}/#key={demo['api_key']}"


def test_every_currency_nets_what_the_seed_period_sent_across_several_channels(system, demo,
                                                                              sent):
    # Today is cut when the demo ran: an order or refund of today may fall while it ran.
    expected = [period.net_by_currency() for period in sent]
    rows = report(system, demo, "/api/attribution/channels", model="linear")["rows"]
    net: dict[str, int] = {}
    for row in rows:
        net[row["currency"]] = net.get(row["currency"], 0) + row["net_cents"]
    assert net in expected
    assert len({row["channel"] for row in rows if row["net_cents"] > 0}) >= 4
    assert any(row["refunds_cents"] for row in rows)
    days = report(system, demo, "/api/reports/daily-revenue", limit=1000)["days"]
    daily: dict[str, int] = {}
    for day in days:
        daily[day["currency"]] = daily.get(day["currency"], 0) + day["net_cents"]
    assert daily == net


def test_the_revenue_spreads_over_ninety_days_and_the_spend_is_loaded_to_the_cent(system, demo,
                                                                                   sent):
    generated = sent[0]
    days = report(system, demo, "/api/reports/daily-revenue", limit=1000)["days"]
    sold_days = {day["day"] for day in days if day["orders"]}
    assert sold_days == {order.ordered_at.date().isoformat() for order in generated.orders}
    assert len(sold_days) == DEFAULT_DAYS
    items, cursor = [], None
    while True:
        page = report(system, demo, "/api/reports/spend", limit=1000,
                      **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    loaded = {(r["day"], r["ad_id"]): (r["spend_cents"], r["spend_reporting_cents"])
              for r in items}
    assert len(loaded) == len(items) == len(generated.spend)
    expected = {(row["date"], row["ad_id"]): int(row["spend"].replace(".", ""))
                for row in generated.spend}
    assert loaded.keys() == expected.keys()
    # The current day's spend so far moves with the clock; every earlier day's is fixed.
    today = datetime.now(timezone.utc).date().isoformat()
    assert {key: cents for key, (cents, _) in loaded.items() if key[0] != today} == {
        key: cents for key, cents in expected.items() if key[0] != today}
    # USD spend needs no rate: every row converts into the USD reporting currency as it is.
    assert all(cents == converted for cents, converted in loaded.values())


def test_every_platforms_orders_are_attributed(system, demo, sent):
    day = sent[0]
    for order in day.orders[:: max(1, len(day.orders) // 8)] + (day.orders[-1],):
        provider = SOURCE_OF_CHECKOUT[order.checkout]
        response = httpx.get(
            f"{system.api_url}/api/attribution/orders/{provider}/{external_order_id(order)}",
            headers={"Authorization": f"Bearer {demo['api_key']}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        view = response.json()
        assert not view["attribution_pending"]
        assert view["revenue_cents"] == order.total_minor - order.refunded_minor
        assert view["models"]["linear"]["allocated_cents"] == view["revenue_cents"]


def test_the_demo_learns_so_every_order_has_all_eight_models(system, demo):
    comparison = report(system, demo, "/api/reports/models")
    assert comparison["models"] == ["first_touch", "last_touch", "last_non_direct", "linear",
                                    "time_decay", "position_based", "markov", "shapley"]
    for totals in comparison["totals"]:
        assert totals["net_cents"]["markov"] == totals["net_cents"]["linear"]
    weights = httpx.get(f"{system.api_url}/api/attribution/weights", params={"model": "markov"},
                        headers={"Authorization": f"Bearer {demo['api_key']}"}, timeout=10)
    assert weights.status_code == 200, weights.text
    assert weights.json()["version"] >= 1 and weights.json()["conversions"] > 0


def without_deployment_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SKELDIR_")}


def run_demo(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skeldir", "--data-dir", str(data_dir), "demo", "--json"],
        env=without_deployment_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_running_system_the_demo_says_to_start_one(tmp_path):
    done = run_demo(tmp_path)
    assert done.returncode != 0 and done.stdout == ""
    assert "start `skeldir up" in done.stderr


def test_a_system_that_stopped_answering_is_reported_before_anything_is_created(tmp_path):
    # What a killed `up` leaves behind: its runtime file, and nothing listening.
    port = free_port_pair()
    (tmp_path / "runtime.json").write_text(
        json.dumps(
            {
                "api_url": f"http://127.0.0.1:{port}",
                "owner_database_url": "postgresql://nobody@127.0.0.1:1/none",
                "database_url": "postgresql://nobody@127.0.0.1:1/none",
            }
        )
    )
    done = run_demo(tmp_path)
    assert done.returncode != 0 and done.stdout == ""
    assert f"no Skeldir API answers at http://127.0.0.1:{port}" in done.stderr
