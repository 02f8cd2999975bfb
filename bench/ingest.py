"""Ingest throughput: signed orders per second beside the bare verify-only ceiling, in one run.

    make bench-ingest        # = .venv/bin/python bench/ingest.py
    .venv/bin/python bench/ingest.py --api-url URL --owner-url URL --tenant ID \\
        --source-url URL --secret S            # attach to a running system instead

Needs wrk (Debian: `apt-get update && apt-get install -y wrk`). Python writes complete HTTP
requests (unique order ids, one file per wrk thread so the slices are disjoint) and
bench/wrk/replay.lua hands them back round-robin, so the load generator does no per-request
work beyond wrk's own. Pinned at 2 wrk threads (the machine has 2 cores, shared with the
server), 32 connections, loopback.

Phases: a 2 s warm-up with real orders, a wait until the worker has drained it, then 10 s
(`--duration`) of requests with a bad signature (the app's own 401 path: routing, the source
from the cache, the HMAC, error rendering; nothing written), then 1 + 10 s of the signed orders
to the bare verify-only app (bench/bare_verify_app.py, started here: the HTTP ceiling of one
uvicorn process served as `skeldir api` serves the app), then 10 s of the same signed orders to
Skeldir. Accepted means a new webhook_events row (counted in the database), not just a 2xx.
Beside each phase it prints the cores busy per part (API, worker, PostgreSQL, Redis, wrk, the
bare app) and on the rest of the machine: other work there (someone's tests) lowers the figures.

During the signed orders it also samples which PostgreSQL backends serve which role
(pg_stat_activity: the API's runtime role, the worker's own) and their CPU, and reads the
tenant's pending orders before and after: the API-side PostgreSQL CPU per accepted
webhook, and the worker's CPU plus its backends' per order it attributed in the phase (to set
beside the batch recompute's, bench/attribution.py; bench/run_all.py prints the ratio). Memory:
the resident size (RSS) of the API and of the worker before the warm-up, and the largest seen
during the signed orders.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

import common
import meters

REPLAY_LUA = Path(__file__).resolve().parent / "wrk" / "replay.lua"
BARE_APP = Path(__file__).resolve().parent / "bare_verify_app.py"
BARE_WARMUP_SECONDS = 1
THREADS = 2
CONNECTIONS = 32
# Unique orders prepared per measured second: far above what one API process does here.
ORDERS_PER_SECOND = 12_000
WARMUP_SECONDS = 2
TARGET_ACCEPTED = 4_000
# Of the bare verify-only app's rate in the same run (the HTTP ceiling of one process).
TARGET_SHARE_OF_BARE = 0.50
# Each of the API and the worker (beat is a thread of it), as the recompute's bound.
MEMORY_BOUND_MIB = 1024
# At rest (before any load).
MEMORY_AT_REST_MIB = {"api": 120, "worker": 150}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    socket_errors: str
    latency_ms: dict[str, float]
    replay: list[str]
    cpu: dict[str, float]
    # Seconds the CPU shares were measured over (wrk's run, its start and exit included).
    cpu_wall: float = 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    return path


def write_requests(prefix: Path, requests: list[bytes]) -> None:
    """Thread N of wrk reads prefix.N: every THREADS-th request, NUL-separated."""
    for thread in range(THREADS):
        path = prefix.with_name(f"{prefix.name}.{thread}")
        path.write_bytes(b"\0".join(requests[thread::THREADS]))


def signed_orders(target: common.Target, ids: range, secret: str | None = None) -> list[bytes]:
    secret = secret or target.secret
    bodies = (common.order_body(i) for i in ids)
    return [
        common.raw_post(target.source_url, body, common.signature(secret, body)) for body in bodies
    ]


def run_wrk(wrk: str, url: str, prefix: Path, seconds: int, meter: meters.CpuMeter) -> WrkResult:
    command = [
        wrk,
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(REPLAY_LUA),
        url,
        "--",
        str(prefix),
    ]
    meter.start()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu = meter.stop()
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, cpu, meter.wall)


def parse_wrk(output: str, cpu: dict[str, float], cpu_wall: float = 0.0) -> WrkResult:
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    seconds = float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
    latency = {
        pct: float(value) * _UNITS[unit]
        for pct, value, unit in re.findall(
            r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M
        )
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=seconds,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "none",
        latency_ms=latency,
        replay=re.findall(r"^replay: .*$", output, re.M),
        cpu=cpu,
        cpu_wall=cpu_wall,
    )


def stored_events(target: common.Target) -> int:
    with psycopg.connect(target.owner_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM webhook_events WHERE tenant_id = %s", (target.tenant_id,)
        ).fetchone()[0]


def wait_until_idle(target: common.Target, timeout: float = 120.0) -> float:
    """Seconds until the tenant has no pending orders and no dirty report rows (NaN when that
    did not happen within `timeout`)."""
    started = time.monotonic()
    with psycopg.connect(target.owner_url, autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            left = conn.execute(
                "SELECT (SELECT count(*) FROM pending_orders WHERE tenant_id = %(t)s)"
                " + (SELECT count(*) FROM report_dirty_orders WHERE tenant_id = %(t)s)",
                {"t": target.tenant_id},
            ).fetchone()[0]
            if left == 0:
                return time.monotonic() - started
            time.sleep(0.2)
    return float("nan")


def describe(name: str, result: WrkResult) -> None:
    lat = result.latency_ms
    print(
        f"\n{name}: {result.requests} requests in {result.seconds:.2f}s = {result.rps:.0f}/s, "
        f"non-2xx {result.non_2xx}, socket errors: {result.socket_errors}"
    )
    print(
        "  latency "
        + "  ".join(
            f"p{pct} {lat.get(pct, float('nan')):.2f} ms" for pct in ("50", "75", "90", "99")
        )
    )
    print(f"  CPU, cores busy (of 2): {meters.format_shares(result.cpu)}")
    for line in result.replay:
        print(f"  {line}")
        sent, prepared = map(int, re.findall(r"\d+", line)[1:3])
        if sent > prepared > 1:
            print("  WARNING: wrk ran out of prepared orders and repeated ids (duplicates)")


@contextlib.contextmanager
def bare_verify_app(secret: str) -> Iterator[tuple[str, int]]:
    """bench/bare_verify_app.py in a process of its own on a free port above 61000: its base
    URL and pid. It checks signatures with `secret`, the one the orders are signed with."""
    port = common.free_port_pair()
    log = tempfile.NamedTemporaryFile(prefix="skeldir-bench-bare-", suffix=".log", delete=False)
    app = subprocess.Popen(
        [sys.executable, str(BARE_APP), "--port", str(port), "--secret", secret],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if app.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bare verify-only app did not start (log: {log.name})")
            time.sleep(0.1)
        yield url, app.pid
    finally:
        app.terminate()
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        log.close()
        os.unlink(log.name)


def live_cost(
    cpu: dict[str, float],
    cpu_wall: float,
    backends: dict[str, float] | None,
    target: common.Target,
    accepted: int,
    attributed: int,
) -> dict[str, float]:
    """CPU per webhook and per attributed order of the signed-orders phase, in microseconds."""
    figures: dict[str, float] = {}
    if accepted and "api" in cpu:
        figures["api_us_per_webhook"] = cpu["api"] * cpu_wall / accepted * 1e6
    if backends is None:
        return figures
    if accepted:
        figures["api_postgres_us_per_webhook"] = backends[target.runtime_role] / accepted * 1e6
    if attributed:
        worker = cpu.get("worker", 0.0) * cpu_wall
        postgres = backends[target.worker_role]
        figures["live_worker_us_per_order"] = worker / attributed * 1e6
        figures["live_worker_postgres_us_per_order"] = postgres / attributed * 1e6
        figures["live_us_per_order"] = (worker + postgres) / attributed * 1e6
    return figures


def microseconds(figures: dict[str, float], name: str) -> str:
    return f"{figures[name]:,.0f} us" if name in figures else "-"


def measure(
    target: common.Target, duration: int, figures: dict[str, float] | None = None
) -> list[tuple[str, str, str, str]]:
    """Warm up, then the app's own 401 path, then the bare verify-only app, then signed orders;
    print each phase, return the rows. `figures` receives the raw CPU costs (microseconds) for
    bench/run_all.py to set beside the batch recompute's."""
    wrk = require_wrk()
    figures = {} if figures is None else figures
    print(
        f"wrk: {THREADS} threads, {CONNECTIONS} connections, loopback "
        f"(the server shares the machine's {os.cpu_count()} cores with wrk)"
    )
    memory = meters.MemoryMeter(target.up_pid)
    at_rest = memory.sample()
    at_rest_pss = memory.sample(proportional=True)
    # Backends are told apart by role only on a system this run started.
    roles = [target.runtime_role, target.worker_role]
    backend_meter = (
        meters.BackendCpuMeter(target.owner_url, roles)
        if target.up_pid and all(roles)
        else None
    )
    with tempfile.TemporaryDirectory() as tmp, bare_verify_app(target.secret) as (bare_url, pid):
        meter = meters.CpuMeter(target.up_pid, named={"bare app": pid})
        warmup_count = ORDERS_PER_SECOND * WARMUP_SECONDS
        ids = common.run_order_ids(warmup_count + ORDERS_PER_SECOND * duration)
        warmup, orders, bad = Path(tmp, "warmup"), Path(tmp, "orders"), Path(tmp, "verify-only")
        write_requests(warmup, signed_orders(target, ids[:warmup_count]))
        write_requests(orders, signed_orders(target, ids[warmup_count:]))
        write_requests(bad, signed_orders(target, ids[:THREADS], secret="not the secret"))

        run_wrk(wrk, target.source_url, warmup, WARMUP_SECONDS, meter)
        warmup_drained = wait_until_idle(target)
        if math.isnan(warmup_drained):
            sys.exit("the worker did not drain the warm-up within 120 s")
        print(f"warm-up done; worker drained it in {warmup_drained:.1f}s")
        own_401 = run_wrk(wrk, target.source_url, bad, duration, meter)
        # The very requests of the signed phase, to the bare app: it stores nothing, so the
        # same order ids are still new to Skeldir afterwards.
        run_wrk(wrk, bare_url, orders, BARE_WARMUP_SECONDS, meter)
        bare = run_wrk(wrk, bare_url, orders, duration, meter)
        before = stored_events(target)
        pending_before = pending_orders(target)
        memory.start()
        if backend_meter:
            backend_meter.start()
        ingest = run_wrk(wrk, target.source_url, orders, duration, meter)
        backends = backend_meter.stop() if backend_meter else None
        under_load = memory.stop()
        accepted = stored_events(target) - before
        pending_after = pending_orders(target)
        # Each new order is marked pending in its ingest transaction, and the worker clears the
        # marks of a batch in the transaction that writes its attribution.
        attributed = pending_before + accepted - pending_after
        drained = wait_until_idle(target)

    describe("the app's own 401 path (bad signature)", own_401)
    describe("bare verify-only app, same requests (expect 200)", bare)
    describe("signed orders (expect 200 accepted)", ingest)
    accepted_rps = accepted / ingest.seconds
    share = accepted_rps / bare.rps if bare.rps else 0.0
    own_share = accepted_rps / own_401.rps if own_401.rps else 0.0
    p99 = ingest.latency_ms.get("99", float("inf"))
    print(f"  accepted (new webhook_events rows): {accepted} of {ingest.requests} responses")
    print(
        f"  orders the worker attributed during the phase: {attributed:,}; "
        f"the rest of the backlog drained {drained:.1f}s after it"
    )
    if own_401.non_2xx != own_401.requests:
        print(f"  WARNING: {own_401.requests - own_401.non_2xx} bad-signature requests passed")
    if bare.non_2xx:
        print(f"  WARNING: the bare app refused {bare.non_2xx} signed requests")
    figures.update(live_cost(ingest.cpu, ingest.cpu_wall, backends, target, accepted, attributed))
    if backends is not None:
        print(
            "  PostgreSQL backends' CPU during the phase, seconds: "
            + ", ".join(f"{role} {used:.2f}" for role, used in backends.items())
        )
    if "live_us_per_order" in figures:
        print(
            "  live cost per attributed order: worker "
            f"{microseconds(figures, 'live_worker_us_per_order')} + its PostgreSQL "
            f"{microseconds(figures, 'live_worker_postgres_us_per_order')}"
        )
    rows = [
        (
            "accepted/s",
            f"{accepted_rps:,.0f}",
            f">= {TARGET_ACCEPTED:,}",
            common.verdict(accepted_rps >= TARGET_ACCEPTED),
        ),
        ("bare verify-only app/s (the ceiling)", f"{bare.rps:,.0f}", "-", ""),
        (
            "accepted / bare ceiling",
            f"{share:.0%}",
            f">= {TARGET_SHARE_OF_BARE:.0%}",
            common.verdict(share >= TARGET_SHARE_OF_BARE),
        ),
        ("own 401 path/s (the app's bad-signature answer)", f"{own_401.rps:,.0f}", "-", ""),
        (
            "accepted / own 401 path",
            f"{own_share:.0%}",
            ">= 30%",
            common.verdict(own_share >= 0.30),
        ),
        ("ingest p50", f"{ingest.latency_ms.get('50', float('nan')):.1f} ms", "-", ""),
        ("ingest p99", f"{p99:.1f} ms", "<= 50 ms", common.verdict(p99 <= 50)),
        ("bare app p50 / p99", p50_p99(bare), "-", ""),
        ("own 401 path p50 / p99", p50_p99(own_401), "-", ""),
        (
            "ingest non-2xx / socket errors",
            f"{ingest.non_2xx} / {ingest.socket_errors}",
            "0",
            common.verdict(ingest.non_2xx == 0),
        ),
        ("API CPU per accepted webhook", microseconds(figures, "api_us_per_webhook"), "-", ""),
        (
            "API-side PostgreSQL CPU per accepted webhook",
            microseconds(figures, "api_postgres_us_per_webhook"),
            "-",
            "",
        ),
        (
            "live worker + its PostgreSQL CPU per attributed order",
            microseconds(figures, "live_us_per_order"),
            "<= 3x the batch recompute's",
            "",
        ),
        ("orders attributed during the signed phase", f"{attributed:,}", "-", ""),
        (
            "CPU during ingest, cores",
            ", ".join(
                f"{part} {ingest.cpu.get(part, 0.0):.2f}"
                for part in ("api", "postgres", "worker", "load generator", "rest of machine")
                if part in ingest.cpu
            ),
            "-",
            "",
        ),
    ]
    for part in ("api", "worker"):
        if part in at_rest:
            peak = under_load.get(part)
            rows.append(
                (
                    f"{part} memory at rest, RSS / PSS",
                    f"{meters.mib(at_rest[part])} / {meters.mib(at_rest_pss.get(part))}",
                    f"<= {MEMORY_AT_REST_MIB[part]} MiB",
                    common.verdict(at_rest[part] <= MEMORY_AT_REST_MIB[part] * 2**20),
                )
            )
            rows.append(
                (
                    f"{part} memory (RSS) at rest / under load",
                    f"{meters.mib(at_rest[part])} / {meters.mib(peak)}",
                    f"< {MEMORY_BOUND_MIB:,} MiB",
                    common.verdict(max(at_rest[part], peak or 0) < MEMORY_BOUND_MIB * 2**20),
                )
            )
    return rows


def p50_p99(result: WrkResult) -> str:
    lat = result.latency_ms
    return f"{lat.get('50', float('nan')):.1f} / {lat.get('99', float('nan')):.1f} ms"


def pending_orders(target: common.Target) -> int:
    with psycopg.connect(target.owner_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pending_orders WHERE tenant_id = %s", (target.tenant_id,)
        ).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_target_arguments(parser)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured phase [10]")
    args = parser.parse_args()
    require_wrk()
    with common.target_from(args) as target:
        rows = measure(target, args.duration)
    common.print_table(
        f"ingest, one API process, {CONNECTIONS} connections, wrk -t{THREADS} on the same 2 cores",
        rows,
    )


if __name__ == "__main__":
    main()
