"""`skeldir spend load`: a CSV of spend rows, all or nothing unless --skip-invalid, with errors
by line number."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from db_helpers import create_tenant
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection

HEADER = "date,platform,account_id,campaign_id,campaign_name,adset_id,ad_id,currency,spend,impressions,clicks\n"


def run(database: Settings, *args: str):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key,
           "SKELDIR_WORKER_DATABASE_URL": database.worker_database_url}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env)


def stored(database: Settings, tenant) -> list[tuple]:
    with owner_connection(database) as conn:
        return conn.execute(
            "SELECT campaign_id, adset_id, ad_id, spend_minor, clicks FROM ad_spend"
            " WHERE tenant_id = %s ORDER BY campaign_id", (tenant.tenant_id,)).fetchall()


def test_a_good_file_loads_and_a_restated_one_replaces(database: Settings, tmp_path: Path):
    tenant = create_tenant(database)
    spend = tmp_path / "spend.csv"
    spend.write_text(HEADER + "2026-12-01,meta,act_1,c1,\"Spring, sale\",s1,a1,USD,50.00,1000,40\n"
                     "2026-12-01,google_ads,123,c2,,,,JPY,1200,,\n")
    loaded = run(database, "spend", "load", "--tenant", str(tenant.tenant_id), str(spend))
    assert loaded.exit_code == 0, loaded.output
    assert "loaded: 2" in loaded.stdout and "loading spend" in loaded.stderr
    spend.write_text(HEADER + "2026-12-01,meta,act_1,c1,Spring,s1,a1,USD,55.00,1000,44\n")
    again = run(database, "spend", "load", "--tenant", str(tenant.tenant_id), str(spend), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"loaded": 1, "invalid": 0, "errors": []}
    assert stored(database, tenant) == [("c1", "s1", "a1", 5500, 44), ("c2", "", "", 1200, 0)]


def test_a_bad_row_loads_nothing_unless_skipped(database: Settings, tmp_path: Path):
    tenant = create_tenant(database)
    spend = tmp_path / "spend.csv"
    spend.write_text(HEADER + "2026-12-01,meta,act_1,c1,,,,USD,1.00,,\n"
                     "2026-13-01,meta,act_1,c2,,,,USD,1.00,,\n"
                     "2026-12-01,meta,act_1\n"
                     "2026-12-01,meta,act_1,c3,,,,USD,1.001,,\n")
    refused = run(database, "spend", "load", "--tenant", str(tenant.tenant_id), str(spend))
    assert refused.exit_code == 1
    assert "line 3: date" in refused.stderr and "line 4: row: 3 cells" in refused.stderr
    assert "line 5: spend" in refused.stderr and "nothing loaded" in refused.stderr
    assert stored(database, tenant) == []
    as_json = run(database, "spend", "load", "--tenant", str(tenant.tenant_id), str(spend),
                  "--json")
    assert as_json.exit_code == 1
    assert [e["line"] for e in json.loads(as_json.stdout)["errors"]] == [3, 4, 5]

    skipped = run(database, "spend", "load", "--tenant", str(tenant.tenant_id), str(spend),
                  "--skip-invalid", "--json")
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.stdout)["loaded"] == 1
    assert stored(database, tenant) == [("c1", "", "", 100, 0)]


def test_a_wrong_header_or_tenant_is_one_line(database: Settings, tmp_path: Path):
    tenant = create_tenant(database)
    spend = tmp_path / "spend.csv"
    spend.write_text("date,platform,cost\n2026-12-01,meta,1\n")
    header = run(database, "spend", "load", "--tenant", str(tenant.tenant_id), str(spend))
    assert header.exit_code == 1 and "unknown: cost" in header.output
    spend.write_text(HEADER + "2026-12-01,meta,act_1,c1,,,,USD,1.00,,\n")
    unknown = run(database, "spend", "load", "--tenant",
                  "00000000-0000-4000-8000-000000000000", str(spend))
    assert unknown.exit_code == 1 and "no tenant" in unknown.output
