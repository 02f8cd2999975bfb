"""Every benchmark in one run, then one table of figures beside their targets: `make bench`.

    make bench                              # = .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --only ingest,freshness

In order: freshness (bench/freshness.py: 200 webhooks/s for 30 s) and ingest (bench/ingest.py:
wrk, 10 s phases; memory of the API and the worker), both against one `skeldir up` started in a
temp dir; then, each in a process of its own (their memory figures are their own), report
upkeep for one changed order in a tenant of 10,000 orders beside one of 1,000,000
(bench/rebuild.py), attribution throughput over 100,000 orders (bench/attribution.py) and
loading 100,000 spend rows through the API and the CSV command (bench/spend_load.py) and the
performance report over 90 days of 1M orders, 5M touchpoints and 100k spend rows
(bench/performance_report.py, several minutes). Each
prints its details as it runs; at the end comes one markdown table, with the command, the
machine's load average before and after (other work on the machine lowers every figure) and the
time the whole run took. Each module still runs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import common
import meters
import freshness
import ingest

Rows = list[tuple[str, str, str, str]]
BENCHMARKS = (
    "ingest", "freshness", "rebuild", "attribution", "spend_load", "performance_report"
)


def against_one_system(selected: set[str]) -> dict[str, Rows]:
    """Freshness, then ingest. In that order the freshness run is not shared with autovacuum
    going through the ingest's tens of thousands of rows (its workers come and go, so their CPU
    would be counted as other processes')."""
    results: dict[str, Rows] = {}
    args = argparse.Namespace(
        api_url=None, owner_url=None, tenant=None, source_url=None, secret=None
    )
    with common.target_from(args) as target:
        if "freshness" in selected:

            def run_freshness() -> Rows:
                meter = meters.CpuMeter(target.up_pid)
                return freshness.report(asyncio.run(freshness.measure(target, 30, meter)))

            results["freshness"] = guarded("freshness", run_freshness)
        if "ingest" in selected:
            results["ingest"] = guarded("ingest", lambda: ingest.measure(target, 10))
    return results


def in_own_process(name: str) -> Rows:
    """Run bench/<name>.py with its defaults; its rows come back through a JSON file."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp, "rows.json")
        script = Path(__file__).resolve().parent / f"{name}.py"
        subprocess.run([sys.executable, str(script), "--rows-json", str(rows_path)], check=True)
        return [tuple(row) for row in json.loads(rows_path.read_text())]


def guarded(name: str, run: Callable[[], Rows]) -> Rows:
    """A benchmark that fails leaves a row saying so; the others still run."""
    print(f"\n===== {name} =====", flush=True)
    try:
        return run()
    except Exception as exc:  # report and go on: one broken benchmark must not hide the rest
        traceback.print_exc()
        return [("failed", f"{type(exc).__name__}: {exc}"[:200], "-", "not met")]


def markdown(results: dict[str, Rows]) -> str:
    lines = ["| benchmark | figure | measured | target | verdict |", "|---|---|---|---|---|"]
    for name in BENCHMARKS:
        for what, measured, target, verdict in results.get(name, []):
            cells = (name, what.strip(), measured, target, verdict)
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}"
    )
    selected = set(parser.parse_args().only.split(","))
    unknown = selected - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    if selected & {"ingest"}:
        ingest.require_wrk()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    load_before = load()
    started = time.monotonic()

    results: dict[str, Rows] = {}
    if selected & {"ingest", "freshness"}:
        results.update(against_one_system(selected))
    for name in ("rebuild", "attribution", "spend_load", "performance_report"):
        if name in selected:
            results[name] = guarded(name, lambda name=name: in_own_process(name))

    minutes, seconds = divmod(time.monotonic() - started, 60)
    print("\n" + markdown(results))
    print(f"\ncommand: {command}")
    print(f"load average before: {load_before}; after: {load()}")
    print(f"took {int(minutes)} min {seconds:.0f} s")


if __name__ == "__main__":
    main()
