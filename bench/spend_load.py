"""Loading 100,000 spend rows: through the API and through `skeldir spend load`.

    .venv/bin/python bench/spend_load.py                 # 100,000 rows each way
    .venv/bin/python bench/spend_load.py --rows 20000

Starts `skeldir up` in a temp dir and creates two tenants. Into the first, the rows go as
`POST /api/spend` requests of 10,000 rows, one after another, as a spend export job sends them;
into the second, as one CSV file through `skeldir spend load --tenant T FILE.csv` (the
command's whole run: start, validation, the one transaction). Both are fresh keys (inserts),
then the API load is repeated over the same keys (a restatement: every row updated). Each figure
is rows per second of wall time, against the target of 50,000 rows/s.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

import common

TARGET_ROWS_PER_SECOND = 50_000
REQUEST_ROWS = 10_000
PLATFORMS = ("meta", "google_ads", "tiktok")
FIRST_DAY = date(2026, 1, 1)


def spend_rows(count: int, restated: bool = False) -> list[dict]:
    """`count` distinct keys, with names and figures like a platform export's."""
    rows = []
    for index in range(count):
        # A thousand ads a day, day after day: every row its own key.
        day, ad = divmod(index, 1000)
        campaign, adset = divmod(ad // 4, 5)
        cents = 1000 + (index * 7919) % 90_000 + (1 if restated else 0)
        rows.append({
            "date": (FIRST_DAY + timedelta(days=day)).isoformat(),
            "platform": PLATFORMS[ad % 3],
            "account_id": f"act_{ad % 3}",
            "campaign_id": f"c{campaign}",
            "campaign_name": f"Campaign {campaign}",
            "adset_id": f"s{campaign}-{adset}",
            "adset_name": f"Ad set {adset} of campaign {campaign}",
            "ad_id": f"a{ad}",
            "ad_name": f"Ad {ad}",
            "currency": "USD",
            "spend": f"{cents // 100}.{cents % 100:02d}",
            "impressions": 1000 + index % 5000,
            "clicks": 10 + index % 300,
        })
    return rows


def through_api(api_url: str, api_key: str, rows: list[dict]) -> float:
    """Seconds to send `rows` as POST /api/spend requests of REQUEST_ROWS rows."""
    bodies = [json.dumps({"rows": rows[i:i + REQUEST_ROWS]}).encode()
              for i in range(0, len(rows), REQUEST_ROWS)]
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post(f"{api_url}/api/spend", content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"POST /api/spend: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - started


def through_cli(data_dir: str, tenant_id: str, rows: list[dict]) -> float:
    """Seconds of `skeldir spend load` over one CSV file of `rows`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "spend.csv")
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        started = time.perf_counter()
        done = subprocess.run(
            [*common.SKELDIR, "--data-dir", data_dir, "spend", "load", "--tenant", tenant_id,
             str(path), "--json"], capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - started
    if done.returncode != 0 or json.loads(done.stdout)["loaded"] != len(rows):
        raise RuntimeError(f"skeldir spend load failed: {done.stderr[-500:]}")
    return seconds


def row(what: str, count: int, seconds: float) -> tuple[str, str, str, str]:
    rate = count / seconds
    return (what, f"{rate:,.0f} rows/s ({count:,} rows in {seconds:.2f} s)",
            f">= {TARGET_ROWS_PER_SECOND:,} rows/s", common.verdict(rate >= TARGET_ROWS_PER_SECOND))


def measure(count: int) -> list[tuple[str, str, str, str]]:
    rows = spend_rows(count)
    with common.running_system() as ready:
        data_dir = ready["data_dir"]
        first = common.cli(data_dir, "tenant", "create", "spend by API", "--json")
        second = common.cli(data_dir, "tenant", "create", "spend by CSV", "--json")
        api_seconds = through_api(ready["api_url"], first["api_key"], rows)
        print(f"API, new keys: {api_seconds:.2f} s", flush=True)
        restated_seconds = through_api(ready["api_url"], first["api_key"],
                                       spend_rows(count, restated=True))
        print(f"API, the same keys restated: {restated_seconds:.2f} s", flush=True)
        cli_seconds = through_cli(data_dir, second["tenant_id"], rows)
        print(f"skeldir spend load: {cli_seconds:.2f} s", flush=True)
    return [
        row(f"POST /api/spend, {REQUEST_ROWS:,}-row requests, new keys", count, api_seconds),
        row("  the same keys again (restated)", count, restated_seconds),
        row("skeldir spend load FILE.csv (whole command)", count, cli_seconds),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows loaded each way")
    common.add_rows_argument(parser)
    args = parser.parse_args()
    common.finish(args, f"loading {args.rows:,} spend rows", measure(args.rows))


if __name__ == "__main__":
    main()
