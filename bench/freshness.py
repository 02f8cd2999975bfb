"""Freshness: a steady rate of webhooks (200/s for 30 s by default); how soon each order is
balanced in the report.

    make bench-freshness     # = .venv/bin/python bench/freshness.py
    .venv/bin/python bench/freshness.py --rate 2000 --seconds 20   # hold 2,000/s for 20 s
    .venv/bin/python bench/freshness.py --api-url URL --owner-url URL --tenant ID \\
        --source-url URL --secret S --broker-url URL     # attach to a running system instead

The sender is open-loop: request i is due at start + i/rate whatever happened before, written
as prepared bytes on one of a few keep-alive connections (raw asyncio streams, no HTTP
library; one connection per 25/s of rate, at least 8, or --connections: a connection carries
one request at a time, and under load the API answers in batches, tens of ms apart),
so it costs the server's two cores little; wrk2 would do the same, but Debian ships no wrk2,
and this needs no wrk at all. The rate is held when the latest send is not far behind its due
instant (printed) and the answers arrive at the rate sent.
Every 0.5 s it samples the broker queues (Redis LLEN of <namespace>.attribution and
<namespace>.reporting) and the tenant's pending orders (the real backlog: the chain is
debounced, so a short queue can hide a long pending list). Every 50 ms, during the load and
after it until all are balanced, it polls as the owner, one query over the run's orders that
were answered 200 and not yet seen balanced in all six models of allocation_summary.

Freshness per order, as a reader of the report sees it: the start of the first poll that saw
the order balanced - the instant its 200 arrived (an upper bound, 50 ms coarse). On the
database clock: refreshed_at - received_at of its event; both are now() of their transactions,
i.e. their starts, so when a refresh transaction runs long (it also rebuilds other reports) this
reads early. Backlog clear: when the poll saw the last order balanced - the instant of the last
send (and the same by max(refreshed_at)). The client and database share the machine's clock;
the measured offset is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psycopg

import common
import meters

RATE = 200
SECONDS = 30
MIN_CONNECTIONS = 8
# A connection carries one request at a time, and a batch of ingests takes tens of ms under
# load: at 25/s each, the connections are not what limits the rate.
RATE_PER_CONNECTION = 25
SAMPLE_SECONDS = 0.5
POLL_SECONDS = 0.05
DRAIN_TIMEOUT = 60.0
MODELS = 6
QUEUE_BOUND = 10
# Targets at the sustained rate (freshness as a reader of the report sees it).
TARGET_P50_MS = 100
TARGET_P99_MS = 500
TARGET_CLEAR_SECONDS = 5


@dataclass
class Delivery:
    order_id: int
    due: float
    sent_wall: float = 0.0
    answered_wall: float = 0.0
    latency: float = 0.0
    status: int = 0


@dataclass
class Sample:
    at: float
    attribution: int
    reporting: int
    pending: int


@dataclass
class Run:
    deliveries: list[Delivery] = field(default_factory=list)
    # Order id -> (when the poll that first saw it balanced started, its refreshed_at).
    balanced: dict[str, tuple[float, float]] = field(default_factory=dict)
    sending_done: asyncio.Event = field(default_factory=asyncio.Event)
    # Orders answered 200 and not yet seen balanced.
    unseen: set[str] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)
    polls: int = 0


async def deliver(run: Run, free: asyncio.Queue, request: bytes, delivery: Delivery) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await free.get()
    try:
        delivery.sent_wall = time.time()
        delivery.status, _ = await common.exchange(reader, writer, request)
        delivery.answered_wall = time.time()
        delivery.latency = loop.time() - delivery.due
        if delivery.status == 200:
            run.unseen.add(str(delivery.order_id))
    finally:
        free.put_nowait((reader, writer))


def connections_for(rate: int) -> int:
    return max(MIN_CONNECTIONS, -(-rate // RATE_PER_CONNECTION))


async def send_steady(
    run: Run, url: str, requests: list[tuple[int, bytes]], rate: int, connections: int
) -> None:
    parts = urlsplit(url)
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await asyncio.open_connection(parts.hostname, parts.port))
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    tasks = []
    for i, (order_id, request) in enumerate(requests):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        run.deliveries.append(Delivery(order_id, due))
        tasks.append(asyncio.create_task(deliver(run, free, request, run.deliveries[-1])))
    await asyncio.gather(*tasks)
    while not free.empty():
        free.get_nowait()[1].close()
    run.sending_done.set()


async def sample(
    run: Run,
    target: common.Target,
    db: psycopg.AsyncConnection,
    started: float,
    stop: asyncio.Event,
) -> None:
    redis = common.redis_client(target.broker_url) if target.broker_url else None
    while not stop.is_set():
        depth = common.queue_depth(redis, target.namespace) if redis else {}
        pending = await scalar(
            db, "SELECT count(*) FROM pending_orders WHERE tenant_id = %s", (target.tenant_id,)
        )
        run.samples.append(
            Sample(
                time.monotonic() - started,
                depth.get("attribution", -1),
                depth.get("reporting", -1),
                pending,
            )
        )
        try:
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
        except TimeoutError:
            pass


# Of the given orders, those balanced in every model, with when their rows were refreshed.
_NEWLY_BALANCED = """
SELECT o.external_order_id, extract(epoch FROM max(s.refreshed_at))::float8
FROM orders o
JOIN allocation_summary s ON s.tenant_id = o.tenant_id AND s.order_id = o.order_id
WHERE o.tenant_id = %(t)s AND o.provider = 'shopify' AND o.external_order_id = ANY(%(ids)s)
GROUP BY o.external_order_id
HAVING count(*) FILTER (WHERE s.is_balanced) = %(models)s
"""

_RECEIVED = """
SELECT external_order_id, extract(epoch FROM received_at)::float8 FROM webhook_events
WHERE tenant_id = %(t)s AND external_order_id = ANY(%(ids)s)
"""


async def scalar(db: psycopg.AsyncConnection, sql: str, params=None):
    return (await (await db.execute(sql, params)).fetchone())[0]


async def poll_balanced(run: Run, target: common.Target, db: psycopg.AsyncConnection) -> None:
    """Every POLL_SECONDS, one query over the orders answered 200 and not yet seen balanced;
    stops when all are balanced, or DRAIN_TIMEOUT after the load."""
    params = {"t": target.tenant_id, "models": MODELS}
    while True:
        done = run.sending_done.is_set()
        waiting = list(run.unseen)
        if done and not waiting:
            return
        if done and time.time() - max(d.sent_wall for d in run.deliveries) > DRAIN_TIMEOUT:
            print(
                f"NOT DRAINED: {len(waiting)} orders unbalanced {DRAIN_TIMEOUT:.0f}s after the "
                "load",
                file=sys.stderr,
            )
            return
        if waiting:
            # A row committed before this statement's snapshot: seen no later than its start.
            polled_at = time.time()
            rows = await (await db.execute(_NEWLY_BALANCED, {**params, "ids": waiting})).fetchall()
            run.polls += 1
            for order_id, refreshed_at in rows:
                run.balanced[order_id] = (polled_at, refreshed_at)
                run.unseen.discard(order_id)
        await asyncio.sleep(POLL_SECONDS)


async def clock_offset(db: psycopg.AsyncConnection) -> float:
    before = time.time()
    db_now = await scalar(db, "SELECT extract(epoch FROM clock_timestamp())::float8")
    return db_now - (before + time.time()) / 2


async def measure(
    target: common.Target,
    seconds: int,
    meter: meters.CpuMeter,
    rate: int = RATE,
    connections: int | None = None,
) -> dict:
    ids = common.run_order_ids(rate * seconds)
    requests = [
        (i, common.raw_post(target.source_url, body, common.signature(target.secret, body)))
        for i, body in ((i, common.order_body(i)) for i in ids)
    ]
    run = Run()
    async with (
        await psycopg.AsyncConnection.connect(target.owner_url, autocommit=True) as db,
        await psycopg.AsyncConnection.connect(target.owner_url, autocommit=True) as sampler_db,
    ):
        stop = asyncio.Event()
        started = time.monotonic()
        sampler = asyncio.create_task(sample(run, target, sampler_db, started, stop))
        poller = asyncio.create_task(poll_balanced(run, target, db))
        meter.start()
        connections = connections or connections_for(rate)
        print(f"{rate}/s for {seconds}s on {connections} keep-alive connections", flush=True)
        await send_steady(run, target.source_url, requests, rate, connections)
        load_seconds = time.monotonic() - started
        cpu = meter.stop()
        await poller
        stop.set()
        await sampler
        received = dict(
            await (
                await db.execute(_RECEIVED, {"t": target.tenant_id, "ids": [str(i) for i in ids]})
            ).fetchall()
        )
        offset = await clock_offset(db)
    return {
        "run": run,
        "received": received,
        "cpu": cpu,
        "offset": offset,
        "load_seconds": load_seconds,
        "rate": rate,
    }


def series(values: list[int]) -> str:
    return " ".join(str(v) for v in values)


def report_sending(deliveries: list[Delivery], cpu: dict[str, float]) -> None:
    ok = [d for d in deliveries if d.status == 200]
    span = max(d.answered_wall for d in deliveries) - min(d.sent_wall for d in deliveries)
    first = deliveries[0]
    lateness = max((d.sent_wall - first.sent_wall) - (d.due - first.due) for d in deliveries)
    http = [d.latency * 1000 for d in ok]
    print(
        f"\nsent {len(deliveries)} orders over {span:.2f}s ({len(deliveries) / span:.1f}/s), "
        f"{len(ok)} answered 200, {len(deliveries) - len(ok)} other; "
        f"HTTP p50 {common.percentile(http, 0.5):.1f} ms "
        f"p99 {common.percentile(http, 0.99):.1f} ms "
        f"(from the due instant); latest send {lateness * 1000:.1f} ms behind schedule"
    )
    print(f"CPU during the load, cores busy (of 2): {meters.format_shares(cpu)}")


def report_queue(samples: list[Sample], load_seconds: float) -> int | None:
    """Print the series; return the deepest broker queue seen during the load (None: unsampled)."""
    during = [s for s in samples if s.at <= load_seconds]
    queued = [s.attribution + s.reporting for s in samples]
    print(
        f"\nqueue depth every {SAMPLE_SECONDS}s from the start of the load "
        f"({len(during)} samples during the load, {len(samples) - len(during)} after):"
    )
    print(f"  attribution:    {series([s.attribution for s in samples])}")
    print(f"  reporting:      {series([s.reporting for s in samples])}")
    print(f"  pending orders: {series([s.pending for s in samples])}")
    print(
        f"  queued min {min(queued)} max {max(queued)} last {queued[-1]}; pending orders max "
        f"{max(s.pending for s in samples)} last {samples[-1].pending}"
    )
    if any(s.attribution < 0 for s in samples):
        return None
    return max((s.attribution + s.reporting for s in during), default=0)


def report(result: dict) -> list[tuple[str, str, str, str]]:
    """Print the details of a run; return the table's rows."""
    run: Run = result["run"]
    deliveries, cpu = run.deliveries, result["cpu"]
    report_sending(deliveries, cpu)
    print(
        f"database clock - client clock: {result['offset'] * 1000:+.2f} ms; "
        f"{run.polls} polls for balanced orders"
    )

    answered = {str(d.order_id): d.answered_wall for d in deliveries}
    received = result["received"]
    visible = [(seen - answered[oid]) * 1000 for oid, (seen, _) in run.balanced.items()]
    db_clock = [(refreshed - received[oid]) * 1000 for oid, (_, refreshed) in run.balanced.items()]
    last_send = max(d.sent_wall for d in deliveries)
    all_balanced = len(run.balanced) == len(deliveries)
    nan = float("nan")
    clear = max(seen for seen, _ in run.balanced.values()) - last_send if all_balanced else nan
    clear_db = max(r for _, r in run.balanced.values()) - last_send if all_balanced else nan
    print(f"balanced orders: {len(run.balanced)} of {len(deliveries)}")
    for name, lags in (
        (f"200 -> seen balanced (commit-visible, {POLL_SECONDS * 1000:.0f} ms poll)", visible),
        ("received_at -> refreshed_at (db clock, transaction starts)", db_clock),
    ):
        print(
            f"  {name}: p50 {common.percentile(lags, 0.5):.0f} ms  p90 "
            f"{common.percentile(lags, 0.9):.0f}  p99 {common.percentile(lags, 0.99):.0f}  "
            f"max {max(lags, default=nan):.0f} ms"
        )
    print(
        f"  backlog clear after the last send: {clear:.2f}s seen by the poll, "
        f"{clear_db:.2f}s by max(refreshed_at)"
    )
    deepest = report_queue(run.samples, result["load_seconds"])

    p, ok = common.percentile, sum(d.status == 200 for d in deliveries)
    span = max(d.answered_wall for d in deliveries) - min(d.sent_wall for d in deliveries)
    rate = result.get("rate", RATE)
    held = len(deliveries) / span if span else 0.0
    table = [
        (
            "rate held (sent / span of answers)",
            f"{held:,.0f}/s of {rate:,}/s",
            f"{rate:,}/s",
            common.verdict(held >= 0.95 * rate),
        ),
        (
            "200 -> balanced p50 (seen by poll)",
            f"{p(visible, 0.5):.0f} ms",
            f"<= {TARGET_P50_MS} ms",
            common.verdict(p(visible, 0.5) <= TARGET_P50_MS),
        ),
        (
            "200 -> balanced p99 (seen by poll)",
            f"{p(visible, 0.99):.0f} ms",
            f"<= {TARGET_P99_MS} ms",
            common.verdict(p(visible, 0.99) <= TARGET_P99_MS),
        ),
        (
            "received_at -> refreshed_at p50",
            f"{p(db_clock, 0.5):.0f} ms",
            f"<= {TARGET_P50_MS} ms",
            common.verdict(p(db_clock, 0.5) <= TARGET_P50_MS),
        ),
        (
            "received_at -> refreshed_at p99",
            f"{p(db_clock, 0.99):.0f} ms",
            f"<= {TARGET_P99_MS} ms",
            common.verdict(p(db_clock, 0.99) <= TARGET_P99_MS),
        ),
        (
            "broker queue depth, max during load",
            "not sampled" if deepest is None else str(deepest),
            f"bounded (<= {QUEUE_BOUND})",
            "" if deepest is None else common.verdict(deepest <= QUEUE_BOUND),
        ),
        (
            "backlog clear after the load (poll)",
            f"{clear:.2f} s",
            f"<= {TARGET_CLEAR_SECONDS} s",
            common.verdict(clear <= TARGET_CLEAR_SECONDS),
        ),
        (
            "orders balanced",
            f"{len(run.balanced)} / {len(deliveries)}",
            "all",
            common.verdict(all_balanced),
        ),
        ("answered 200", f"{ok} / {len(deliveries)}", "all", common.verdict(ok == len(deliveries))),
        ("sender CPU during the load", f"{cpu['load generator']:.2f} cores", "small", ""),
    ]
    if "rest of machine" in cpu:
        table.append(
            (
                "other processes' CPU during the load",
                f"{cpu['rest of machine']:.2f} cores",
                "~0 (else figures are worse)",
                "",
            )
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_target_arguments(parser)
    parser.add_argument(
        "--rate", type=int, default=RATE, help=f"webhooks per second, open loop [{RATE}]"
    )
    parser.add_argument(
        "--seconds", "--duration", type=int, default=SECONDS, help=f"seconds of load [{SECONDS}]"
    )
    parser.add_argument(
        "--connections",
        type=int,
        help=f"keep-alive connections [one per {RATE_PER_CONNECTION}/s, "
        f"at least {MIN_CONNECTIONS}]",
    )
    args = parser.parse_args()
    if args.rate < 1 or args.seconds < 1:
        parser.error("--rate and --seconds must be at least 1")
    with common.target_from(args) as target:
        if not target.broker_url:
            print("no --broker-url: queue depth is not sampled (shown as -1)")
        meter = meters.CpuMeter(target.up_pid)
        result = asyncio.run(measure(target, args.seconds, meter, args.rate, args.connections))
    rows = report(result)
    common.print_table(
        f"freshness, {args.rate}/s for {args.seconds}s, one API process and one worker", rows
    )


if __name__ == "__main__":
    main()
