"""`skeldir connector add/list/remove/backfill` against the local platform server: credentials
from stdin and never printed, a backfill in chunks with a progress bar that resumes after an
interruption where it stopped."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ads_platform_server import Reply, platform, platform_server  # noqa: F401
from db_helpers import create_tenant
from skeldir.adapters.cli import main
from skeldir.base.config import Settings
from skeldir.base.db import owner_connection

REPORT = "/open_api/v1.3/report/integrated/get/"
SECRET = "tiktok-cli-secret-token"
ADVERTISER = "7057883608681349122"


def run(database: Settings, platform_url: str, *args: str, stdin: str | None = None):
    env = {"SKELDIR_OWNER_DATABASE_URL": database.owner_database_url,
           "SKELDIR_DATABASE_URL": database.database_url, "SKELDIR_SECRET_KEY": database.secret_key,
           "SKELDIR_CONNECTOR_TIKTOK_BASE_URL": f"{platform_url}/open_api/v1.3",
           "SKELDIR_CONNECTOR_BACKFILL_CHUNK_DAYS": "4", "SKELDIR_CONNECTOR_ATTEMPTS": "1"}
    return CliRunner().invoke(main, ["--data-dir", str(database.data_dir), *args], env=env,
                              input=stdin)


def report(seen) -> Reply:
    day = seen.query["start_date"]
    return Reply(body={"code": 0, "message": "OK", "request_id": "r", "data": {
        "list": [{"dimensions": {"ad_id": 1714125042508817233, "stat_time_day": f"{day} 00:00:00"},
                  "metrics": {"spend": "2.50", "impressions": "10", "clicks": "1",
                              "currency": "EUR", "campaign_id": "17", "adgroup_id": "18"}}],
        "page_info": {"page": 1, "page_size": 1000, "total_number": 1, "total_page": 1}}})


def test_add_list_backfill_resume_and_remove(database: Settings, platform):  # noqa: F811
    tenant = create_tenant(database)
    tenant_arg = ("--tenant", str(tenant.tenant_id))
    added = run(database, platform.url, "connector", "add", *tenant_arg, "--platform", "tiktok",
                "--account", ADVERTISER, "--credentials-file", "-", "--json",
                stdin=json.dumps({"access_token": SECRET}))
    assert added.exit_code == 0, added.output
    assert SECRET not in added.output
    connector = json.loads(added.stdout)["connector_id"]
    listed = run(database, platform.url, "connector", "list", *tenant_arg)
    assert connector in listed.stdout and "pending" in listed.stdout and SECRET not in listed.output

    limited = Reply(body={"code": 40100, "message": "Due to too many requests", "data": {}})
    platform.on("GET", REPORT, report, limited)
    window = ("--from", "2026-11-01", "--to", "2026-11-10")
    stopped = run(database, platform.url, "connector", "backfill", *tenant_arg, connector, *window)
    assert stopped.exit_code == 1
    assert "2026-11-05..2026-11-08: throttled" in stopped.stderr
    assert "run the same command again" in stopped.stderr
    platform.on("GET", REPORT, report)
    resumed = run(database, platform.url, "connector", "backfill", *tenant_arg, connector,
                  *window, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert "pulling days" in resumed.stderr
    assert json.loads(resumed.stdout) == {"connector_id": connector, "from": "2026-11-01",
                                          "to": "2026-11-10", "rows": 2,
                                          "resumed_at": "2026-11-05"}
    assert [(s.query["start_date"], s.query["end_date"]) for s in platform.seen()] == [
        ("2026-11-01", "2026-11-04"), ("2026-11-05", "2026-11-08"),
        ("2026-11-05", "2026-11-08"), ("2026-11-09", "2026-11-10")]
    assert all(s.headers["access-token"] == SECRET for s in platform.seen())
    with owner_connection(database) as conn:
        assert conn.execute(
            "SELECT day::text, ad_id, spend_minor FROM ad_spend WHERE tenant_id = %s ORDER BY day",
            (tenant.tenant_id,)).fetchall() == [
            ("2026-11-01", "1714125042508817233", 250), ("2026-11-05", "1714125042508817233", 250),
            ("2026-11-09", "1714125042508817233", 250)]
    removed = run(database, platform.url, "connector", "remove", *tenant_arg, connector)
    assert removed.exit_code == 0, removed.output
    again = run(database, platform.url, "connector", "remove", *tenant_arg, connector)
    assert again.exit_code == 1 and "no connector" in again.stderr


def test_bad_input_is_one_line_without_a_traceback(database: Settings, platform):  # noqa: F811
    tenant = create_tenant(database)
    bad_json = run(database, platform.url, "connector", "add", "--tenant", str(tenant.tenant_id),
                   "--platform", "meta", "--account", "act_1", "--credentials-file", "-",
                   stdin="not json")
    assert bad_json.exit_code == 1 and "not JSON" in bad_json.stderr
    missing = run(database, platform.url, "connector", "add", "--tenant", str(tenant.tenant_id),
                  "--platform", "google_ads", "--account", "1234567890",
                  "--credentials-file", "-", stdin='{"developer_token": "d"}')
    assert missing.exit_code == 1 and "missing: client_id" in missing.stderr
    assert "Traceback" not in missing.output


def test_accounts_lists_what_the_credentials_reach(database: Settings, platform):  # noqa: F811
    platform.on("GET", "/open_api/v1.3/oauth2/advertiser/get/", Reply(body={
        "code": 0, "message": "OK", "data": {"list": [
            {"advertiser_id": 7057883608681349122, "advertiser_name": "Trendsup"}]}}))
    credentials = json.dumps({"access_token": SECRET, "app_id": "1", "secret": "app-secret"})
    listed = run(database, platform.url, "connector", "accounts", "--platform", "tiktok",
                 "--credentials-file", "-", "--json", stdin=credentials)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == {"accounts": [
        {"account_id": ADVERTISER, "name": "Trendsup", "currency": None}]}
    platform.on("GET", "/open_api/v1.3/oauth2/advertiser/get/", Reply(body={
        "code": 40105, "message": "Access token is incorrect or has been revoked.", "data": {}}))
    revoked = run(database, platform.url, "connector", "accounts", "--platform", "tiktok",
                  "--credentials-file", "-", stdin=credentials)
    assert revoked.exit_code == 1 and "needs_reauth: TikTok error 40105" in revoked.stderr
    assert SECRET not in revoked.output and "app-secret" not in revoked.output
