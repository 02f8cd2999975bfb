"""The operator commands against a real database: channel rules, re-attribution, rates."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from db_helpers import create_tenant, ingest_shopify, order_body
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.db import create_pool, owner_connection

PARTNER_RULES = {
    "version": 1, "extends": "default",
    "rules": [{"channel": "affiliate", "utm_source": {"values": ["partnerx"]}}],
}


def run(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key,
           "SKELDIR_WORKER_DATABASE_URL": database.worker_database_url}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env)


def test_channel_rules_are_versioned_and_validated(database: Settings, tmp_path):
    tenant = create_tenant(database)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(PARTNER_RULES))
    first = run(database, "channels", "set", "--tenant", str(tenant.tenant_id), str(rules), "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["version"] == 1 and json.loads(first.output)["changed"]
    same = json.loads(run(database, "channels", "set", "--tenant", str(tenant.tenant_id), str(rules),
                          "--json").output)
    assert (same["version"], same["changed"]) == (1, False)
    shown = json.loads(run(database, "channels", "show", "--tenant", str(tenant.tenant_id),
                           "--json").output)
    assert shown["version"] == 1 and any(r["channel"] == "affiliate" for r in shown["rules"]["rules"])

    rules.write_text(json.dumps({"version": 1, "extends": "default",
                                 "rules": [{"channel": "no_such_channel", "source_name": ["x"]}]}))
    bad = run(database, "channels", "set", "--tenant", str(tenant.tenant_id), str(rules))
    assert bad.exit_code != 0 and "rules[0]" in bad.output


async def ingest_orders(database: Settings, tenant, bodies: list[bytes]) -> None:
    pool = await create_pool(database, max_size=2)
    try:
        for body in bodies:
            await ingest_shopify(pool, tenant, body)
    finally:
        await pool.close()


# Synchronous: the command runs its own event loop, as it does in a terminal.
def test_recompute_marks_a_date_range_pending(database: Settings, tenant_factory):
    tenant = tenant_factory()
    asyncio.run(ingest_orders(database, tenant, [
        order_body(801, created_at="2026-02-01T10:00:00Z"),
        order_body(802, created_at="2026-02-03T10:00:00Z")]))
    with owner_connection(database) as conn:
        conn.execute("DELETE FROM pending_orders WHERE tenant_id = %s", (tenant.tenant_id,))
        conn.commit()
    result = run(database, "recompute", "--tenant", str(tenant.tenant_id), "--from", "2026-02-01",
                 "--to", "2026-02-02", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "1 orders marked" in result.output
    with owner_connection(database) as conn:
        pending = conn.execute(
            "SELECT o.external_order_id FROM pending_orders p JOIN orders o USING (tenant_id, order_id)"
            " WHERE p.tenant_id = %s", (tenant.tenant_id,)).fetchall()
    assert pending == [("801",)]
    # Following the worker gives up, saying why, when none attributes the marked order.
    waited = run(database, "recompute", "--tenant", str(tenant.tenant_id), "--from", "2026-02-01",
                 "--to", "2026-02-02", "--timeout", "1")
    assert waited.exit_code != 0 and "still pending after 1s" in waited.output
    backwards = run(database, "recompute", "--tenant", str(tenant.tenant_id), "--from", "2026-02-02",
                    "--to", "2026-02-01")
    assert backwards.exit_code != 0


def test_fx_load_reports_what_it_loaded(database: Settings, tmp_path):
    rates = tmp_path / "rates.csv"
    rates.write_text("date,base,quote,rate\n2026-02-01,EUR,USD,1.08\n")
    result = run(database, "fx", "load", str(rates), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rates"] == 1
    rates.write_text("date,base,quote,rate\n2026-02-01,EUR,USD,abc\n")
    assert run(database, "fx", "load", str(rates)).exit_code != 0


def test_a_tenants_window_and_half_life_are_configurable(database: Settings):
    tenant = create_tenant(database)
    result = run(database, "tenant", "configure", "--tenant", str(tenant.tenant_id),
                 "--lookback-days", "14", "--half-life-days", "3.5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"tenant_id": str(tenant.tenant_id), "lookback_days": 14,
                                         "half_life_days": 3.5, "reporting_currency": "USD",
                                         "retention_touchpoint_days": 400,
                                         "retention_payload_days": 90,
                                         "retention_dead_letter_days": 30}
    assert run(database, "tenant", "configure", "--tenant", str(tenant.tenant_id),
               "--lookback-days", "0").exit_code != 0
