"""`skeldir learn`: learn a tenant's weights now and re-attribute the window's orders."""

from __future__ import annotations

import json

from click.testing import CliRunner

from db_helpers import create_tenant
from learning_journeys import add_converting_journeys
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection


def run(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key,
           "SKELDIR_WORKER_DATABASE_URL": database.worker_database_url}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env)


def test_learn_learns_now_and_marks_the_windows_orders(database: Settings):
    tenant = create_tenant(database)
    add_converting_journeys(database, tenant, 3, first_order=7100)
    learned = run(database, "learn", "--tenant", str(tenant.tenant_id), "--no-wait", "--json")
    assert learned.exit_code == 0, learned.output
    document = json.loads(learned.stdout)
    assert [(w["model"], w["version"]) for w in document["learned"]] == [("markov", 1),
                                                                         ("shapley", 1)]
    assert document["orders_marked"] == 3 and "marking orders" in learned.stderr
    with owner_connection(database) as conn:
        assert conn.execute("SELECT count(*) FROM pending_orders WHERE tenant_id = %s",
                            (tenant.tenant_id,)).fetchone()[0] == 3

    readable = run(database, "learn", "--tenant", str(tenant.tenant_id), "--no-wait")
    assert readable.exit_code == 0, readable.output
    assert "markov v2 from 4 journeys (3 converting): paid_search" in readable.stdout
    assert "3 orders of" in readable.stdout

    # Following the worker gives up, saying why, when none attributes the marked orders.
    waited = run(database, "learn", "--tenant", str(tenant.tenant_id), "--timeout", "1")
    assert waited.exit_code == 1 and "still pending after 1s" in waited.output


def test_learn_says_when_there_is_nothing_to_learn_from(database: Settings):
    tenant = create_tenant(database)
    nothing = run(database, "learn", "--tenant", str(tenant.tenant_id))
    assert nothing.exit_code == 1 and "nothing to learn from" in nothing.output
