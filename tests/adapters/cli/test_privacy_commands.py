"""`skeldir privacy erase|list` and `skeldir tenant configure --retention-...` against a real
database."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from privacy_helpers import ALICE, BOB, report_totals, rows_of, seed_customer, where_found
from shop_helpers import Shop
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.db import create_worker_pool


def run(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env)


def in_shop(database: Settings, action):
    async def go():
        pool = await create_worker_pool(database, max_size=2)
        try:
            return await action(pool)
        finally:
            await pool.close()

    return asyncio.run(go())


# Synchronous: the command runs its own event loop, as it does in a terminal.
def test_privacy_erase_from_the_command_line(database: Settings):
    async def seed(pool):
        shop = Shop(database, pool)
        await seed_customer(shop, ALICE)
        await seed_customer(shop, BOB)
        await shop.run_chain()
        return (shop.tenant_id, await shop.stitch_key(), await report_totals(shop),
                await rows_of(shop, BOB))

    tenant_id, key, totals, bob = in_shop(database, seed)
    assert where_found(database, tenant_id, ALICE.derived(key))

    nobody = run(database, "privacy", "erase", "--tenant", str(tenant_id))
    assert nobody.exit_code != 0 and "name a customer" in nobody.output
    bad_order = run(database, "privacy", "erase", "--tenant", str(tenant_id), "--order", "42")
    assert bad_order.exit_code != 0 and "PROVIDER:ORDER_ID" in bad_order.output

    done = run(database, "privacy", "erase", "--tenant", str(tenant_id), "--email", ALICE.email,
               "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["completed"] and report["counts"]["orders_redacted"] == 1
    assert where_found(database, tenant_id, ALICE.derived(key)) == []

    async def after(pool):
        shop = Shop.__new__(Shop)
        shop.database, shop.pool, shop.tenant_id = database, pool, tenant_id
        return await report_totals(shop), await rows_of(shop, BOB)

    assert in_shop(database, after) == (totals, bob)
    listed = json.loads(run(database, "privacy", "list", "--tenant", str(tenant_id),
                            "--json").stdout)["items"]
    assert [(r["kind"], r["origin"]) for r in listed] == [("erasure", "cli")]
    assert ALICE.email not in json.dumps(listed)


def test_tenant_configure_sets_retention(database: Settings, tenant_factory):
    tenant = tenant_factory()
    shown = run(database, "tenant", "configure", "--tenant", str(tenant.tenant_id),
                "--retention-touchpoint-days", "200", "--json")
    assert shown.exit_code == 0, shown.output
    settings = json.loads(shown.stdout)
    assert (settings["retention_touchpoint_days"], settings["retention_payload_days"],
            settings["retention_dead_letter_days"]) == (200, 90, 30)
    refused = run(database, "tenant", "configure", "--tenant", str(tenant.tenant_id),
                  "--retention-payload-days", "0")
    assert refused.exit_code != 0 and "1 to 3650" in refused.output
