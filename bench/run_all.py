"""Every benchmark in one run, then one table of figures beside their targets: `make bench`.

    make bench                              # = .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --only ingest,freshness
    .venv/bin/python bench/run_all.py --full    # attribution at 1M orders / 5M touchpoints

In order: freshness (bench/freshness.py: 200 webhooks/s for 30 s), freshness at the high rate
(2,000 webhooks/s for 20 s) and ingest (bench/ingest.py: wrk, 10 s phases, beside the bare
verify-only app; memory of the API and the worker; the live chain's CPU), all against one
`skeldir up` started in a temp dir; then, each in a process of its own (their memory figures are
their own), report upkeep for one changed order in a tenant of 10,000 orders beside one of
1,000,000 (bench/rebuild.py), attribution throughput over 100,000 orders (bench/attribution.py;
1M orders and 5M touchpoints with --full), a 2-minute soak against a system of its own
(bench/soak.py), loading 100,000 spend rows through the API and the CSV command
(bench/spend_load.py) and the performance report over 90 days of 1M orders, 5M touchpoints and
100k spend rows (bench/performance_report.py, several minutes). When both ingest and
attribution ran, the live worker's CPU per attributed order is set beside the batch
recompute's (target: within 3x). Each prints its details as it runs; at the end comes one
markdown table, with the command, the machine's load average before and after (other work on
the machine lowers every figure) and the time the whole run took. Each module still runs alone.
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
    "ingest",
    "freshness",
    "freshness_high",
    "rebuild",
    "attribution",
    "soak",
    "spend_load",
    "performance_report",
)
# Not selectable: rows made of two benchmarks' figures, shown when both ran.
LIVE_VS_BATCH = "live_vs_batch"
FRESHNESS_SECONDS = 30
HIGH_RATE, HIGH_SECONDS = 2_000, 20
SOAK_MINUTES = 2
# The live chain's CPU per attributed order against the batch recompute's.
LIVE_OVER_BATCH_BOUND = 3.0
FULL_ATTRIBUTION = ["--orders", "1000000", "--touchpoints", "5000000"]


def against_one_system(selected: set[str], figures: dict[str, float]) -> dict[str, Rows]:
    """Freshness (200/s, then 2,000/s), then ingest. In that order the freshness runs are not
    shared with autovacuum going through the ingest's tens of thousands of rows (its workers
    come and go, so their CPU would be counted as other processes')."""
    results: dict[str, Rows] = {}
    args = argparse.Namespace(
        api_url=None, owner_url=None, tenant=None, source_url=None, secret=None
    )
    with common.target_from(args) as target:
        for name, rate, seconds in (
            ("freshness", freshness.RATE, FRESHNESS_SECONDS),
            ("freshness_high", HIGH_RATE, HIGH_SECONDS),
        ):
            if name in selected:

                def run_freshness(rate: int = rate, seconds: int = seconds) -> Rows:
                    meter = meters.CpuMeter(target.up_pid)
                    result = asyncio.run(freshness.measure(target, seconds, meter, rate))
                    return freshness.report(result)

                results[name] = guarded(f"{name}: {rate}/s for {seconds} s", run_freshness)
        if "ingest" in selected:
            results["ingest"] = guarded("ingest", lambda: ingest.measure(target, 10, figures))
    return results


def in_own_process(name: str, options: list[str], figures: dict[str, float]) -> Rows:
    """Run bench/<name>.py with `options`; its rows (and raw figures, added to `figures`) come
    back through a JSON file."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp, "rows.json")
        script = Path(__file__).resolve().parent / f"{name}.py"
        command = [sys.executable, str(script), *options, "--rows-json", str(rows_path)]
        print(f"$ {shlex.join(command)}", flush=True)
        subprocess.run(command, check=True)
        written = json.loads(rows_path.read_text())
        figures.update(written["figures"])
        return [tuple(row) for row in written["rows"]]


def live_against_batch(figures: dict[str, float]) -> Rows:
    """The live worker's CPU per attributed order beside the batch recompute's."""
    live, batch = figures.get("live_us_per_order"), figures.get("batch_us_per_order")
    if live is None or batch is None:
        return []
    ratio = live / batch
    return [
        (
            "live worker + PostgreSQL CPU per attributed order / batch recompute's",
            f"{live:,.0f} us / {batch:,.1f} us = {ratio:.1f}x",
            f"<= {LIVE_OVER_BATCH_BOUND:g}x",
            common.verdict(ratio <= LIVE_OVER_BATCH_BOUND),
        )
    ]


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
    for name in (*BENCHMARKS, LIVE_VS_BATCH):
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
    parser.add_argument(
        "--full",
        action="store_true",
        help="attribution at 1M orders and 5M touchpoints instead of 100k / 500k (minutes longer)",
    )
    args = parser.parse_args()
    selected = set(args.only.split(","))
    unknown = selected - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    if selected & {"ingest"}:
        ingest.require_wrk()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    load_before = load()
    started = time.monotonic()

    results: dict[str, Rows] = {}
    # Raw figures the benchmarks hand back, for rows that combine two of them.
    figures: dict[str, float] = {}
    if selected & {"ingest", "freshness", "freshness_high"}:
        results.update(against_one_system(selected, figures))
    options = {
        "attribution": FULL_ATTRIBUTION if args.full else [],
        "soak": ["--minutes", str(SOAK_MINUTES)],
    }
    for name in ("rebuild", "attribution", "soak", "spend_load", "performance_report"):
        if name in selected:
            results[name] = guarded(
                name, lambda name=name: in_own_process(name, options.get(name, []), figures)
            )
    results[LIVE_VS_BATCH] = live_against_batch(figures)

    minutes, seconds = divmod(time.monotonic() - started, 60)
    print("\n" + markdown(results))
    print(f"\ncommand: {command}")
    print(f"load average before: {load_before}; after: {load()}")
    print(f"took {int(minutes)} min {seconds:.0f} s")


if __name__ == "__main__":
    main()
