"""Soak: half the sustained webhook rate for a long time, touchpoints and refunds mixed in.

    .venv/bin/python bench/soak.py                       # 500 webhooks/s for 30 min
    .venv/bin/python bench/soak.py --minutes 2 --rate 300
    .venv/bin/python bench/soak.py --api-url URL --owner-url URL --tenant ID \\
        --source-url URL --secret S --collect-key K --broker-url URL   # attach instead

`make bench` runs it for 2 minutes (bench/run_all.py); the full 30 minutes are a run of their
own. Flat is the target: no growth in memory, latency or backlog from the first minute to the
last (RSS within +10 %, p99 within 2x or 50 ms and <= 500 ms, pending orders within one second
of arrivals), and every webhook answered 200 attributed once.

The sender is open loop like bench/freshness.py: webhook i is due at start + i/rate, on one of
a few keep-alive connections. Of every ten webhooks one is a Shopify refunds/create of 1.00 on
an order answered 200 at least a second earlier (each order refunded at most once), the others
orders/create of 10.50, created now, each naming its visitor (note attribute
skeldir_visitor_id). Every 100 ms one POST /api/touchpoints (collect key) carries a visit with
UTM fields for each visitor of the orders due in the next 100 ms, so most orders find their
touchpoint and some are stitched by the touchpoint arriving after them.

Each minute it prints: webhooks sent and their HTTP p50/p99 (from the due instant), touchpoint
requests and their p99, non-200 answers, the RSS of the API and of the worker (its beat
included, when this run started the system), the size and dead tuples of the hot tables,
pending orders, dirty report rows and the broker queues.

At the end, once the backlog is clear (pending orders and dirty report rows gone), it checks in
the database that every webhook answered 200 is one stored event (distinct event ids, each in
webhook_events) and that every order answered 200 is attributed once: one allocation_summary row
per model (each model once, the six rule-based ones at least; Markov and Shapley
too once weights are learned), all balanced, revenue 10.50 less the refund when one was
answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import orjson
import psycopg

import common
import meters

RATE = 500
MINUTES = 30.0
REFUND_EVERY = 10
TICK_SECONDS = 0.1
CONNECTIONS = 32
REFUND_AFTER_SECONDS = 1.0
ORDER_CENTS, REFUND_CENTS = 1050, 100
MODELS = 6
DRAIN_TIMEOUT = 300.0
# The tables the live chain writes and rewrites; those missing from the schema are skipped.
HOT_TABLES = (
    "webhook_events",
    "orders",
    "revenue_entries",
    "touchpoints",
    "pending_orders",
    "report_dirty_orders",
    "attribution_allocations",
    "order_attributions",
    "allocation_summary",
    "channel_daily",
    "daily_revenue",
    "chain_state",
)


@dataclass
class Minute:
    webhooks: list[float] = field(default_factory=list)
    touchpoints: list[float] = field(default_factory=list)
    failures: collections.Counter = field(default_factory=collections.Counter)


@dataclass
class Soak:
    started: float = 0.0
    minutes: dict[int, Minute] = field(default_factory=lambda: collections.defaultdict(Minute))
    # Event ids of the webhooks answered 200.
    events: list[str] = field(default_factory=list)
    # Order id -> refunded (a refund answered 200).
    orders: dict[int, bool] = field(default_factory=dict)
    # Orders answered 200, oldest first, with when: refund candidates.
    refundable: collections.deque = field(default_factory=collections.deque)
    # The figures sampled at the end of each minute.
    history: list[dict] = field(default_factory=list)
    touchpoints_sent: int = 0
    touchpoints_accepted: int = 0
    outstanding: int = 0


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat().replace("+00:00", "Z")


def order_body(order_id: int) -> bytes:
    return orjson.dumps(
        {
            "id": order_id,
            "total_price": "10.50",
            "currency": "USD",
            "created_at": now_iso(),
            "note_attributes": [{"name": "skeldir_visitor_id", "value": f"soak-{order_id}"}],
        }
    )


def refund_body(order_id: int) -> bytes:
    at = now_iso()
    return orjson.dumps(
        {
            "id": order_id,
            "order_id": order_id,
            "created_at": at,
            "transactions": [
                {
                    "id": order_id,
                    "kind": "refund",
                    "status": "success",
                    "amount": "1.00",
                    "currency": "USD",
                    "created_at": at,
                }
            ],
        }
    )


def webhook(target: common.Target, body: bytes, topic: str) -> bytes:
    request = common.raw_post(target.source_url, body, common.signature(target.secret, body))
    return request.replace(b"orders/create", topic.encode(), 1)


def touchpoint_request(target: common.Target, collect_key: str, order_ids: range) -> bytes:
    parts = urlsplit(target.api_url)
    body = orjson.dumps(
        {
            "touchpoints": [
                {
                    "id": f"soak-tp-{i}",
                    "visitor_id": f"soak-{i}",
                    "occurred_at": now_iso(timedelta(minutes=-1)),
                    "kind": "visit",
                    "url": "https://shop.example/p?utm_source=soak&utm_medium=cpc"
                    f"&utm_campaign=c{i % 7}",
                }
                for i in order_ids
            ]
        }
    )
    head = (
        f"POST /api/touchpoints HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {collect_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def send(soak: Soak, free: asyncio.Queue, request: bytes, due: float, kind: str, ref: int):
    loop = asyncio.get_running_loop()
    soak.outstanding += 1
    reader, writer = await free.get()
    try:
        status, body = await common.exchange(reader, writer, request)
    finally:
        free.put_nowait((reader, writer))
        soak.outstanding -= 1
    minute = soak.minutes[int((due - soak.started) // 60)]
    latency = (loop.time() - due) * 1000
    if status != 200:
        minute.failures[f"{kind} {status}"] += 1
        return
    if kind == "touchpoints":
        minute.touchpoints.append(latency)
        soak.touchpoints_accepted += orjson.loads(body)["accepted"]
        return
    minute.webhooks.append(latency)
    soak.events.append(orjson.loads(body)["event_id"])
    if kind == "order":
        soak.orders[ref] = False
        soak.refundable.append((ref, loop.time()))
    else:
        soak.orders[ref] = True


async def run_load(
    soak: Soak, target: common.Target, collect_key: str, rate: int, seconds: float
) -> None:
    parts = urlsplit(target.source_url)
    free: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        free.put_nowait(await asyncio.open_connection(parts.hostname, parts.port))
    loop = asyncio.get_running_loop()
    ids = common.run_order_ids(int(rate * seconds) + rate)
    start = soak.started = max(soak.started, loop.time())
    per_tick = max(1, round(rate * TICK_SECONDS))
    tasks: set[asyncio.Task] = set()

    def launch(request: bytes, due: float, kind: str, ref: int) -> None:
        task = asyncio.create_task(send(soak, free, request, due, kind, ref))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    next_order = touched = 0
    for i in range(int(rate * seconds)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        if i % per_tick == 0:
            # The visits of the orders due up to the end of the next tick.
            upcoming = ids[touched : next_order + 2 * per_tick]
            touched = max(touched, next_order + 2 * per_tick)
            if upcoming:
                soak.touchpoints_sent += len(upcoming)
                launch(touchpoint_request(target, collect_key, upcoming), due, "touchpoints", 0)
        candidate = soak.refundable[0] if soak.refundable else None
        if (
            i % REFUND_EVERY == REFUND_EVERY - 1
            and candidate is not None
            and loop.time() - candidate[1] >= REFUND_AFTER_SECONDS
        ):
            soak.refundable.popleft()
            launch(
                webhook(target, refund_body(candidate[0]), "refunds/create"),
                due,
                "refund",
                candidate[0],
            )
        else:
            order_id = ids[next_order]
            next_order += 1
            launch(webhook(target, order_body(order_id), "orders/create"), due, "order", order_id)
    while tasks:
        await asyncio.gather(*list(tasks))
    while not free.empty():
        free.get_nowait()[1].close()


def table_stats(db: psycopg.Connection) -> dict[str, tuple[int, int]]:
    rows = db.execute(
        "SELECT relname, pg_total_relation_size(relid), n_dead_tup FROM pg_stat_user_tables"
        " WHERE relname = ANY(%s)",
        (list(HOT_TABLES),),
    ).fetchall()
    return {name: (size, dead) for name, size, dead in rows}


def backlog(db: psycopg.Connection, tenant_id: str) -> tuple[int, int]:
    return db.execute(
        "SELECT (SELECT count(*) FROM pending_orders WHERE tenant_id = %(t)s),"
        " (SELECT count(*) FROM report_dirty_orders WHERE tenant_id = %(t)s)",
        {"t": tenant_id},
    ).fetchone()


def print_minute(
    label: str,
    minute: Minute,
    memory: dict[str, int],
    tables: dict[str, tuple[int, int]],
    pending: tuple[int, int],
    queues: dict[str, int],
    outstanding: int,
) -> None:
    p = common.percentile
    failures = ", ".join(f"{k} x{v}" for k, v in sorted(minute.failures.items())) or "none"
    print(
        f"\nminute {label}: webhooks {len(minute.webhooks)} p50 {p(minute.webhooks, 0.5):.1f} ms"
        f" p99 {p(minute.webhooks, 0.99):.1f} ms; touchpoint posts {len(minute.touchpoints)}"
        f" p99 {p(minute.touchpoints, 0.99):.1f} ms; not 200: {failures};"
        f" in flight {outstanding}",
        flush=True,
    )
    print(
        f"  RSS api {meters.mib(memory.get('api'))}, worker {meters.mib(memory.get('worker'))};"
        f" pending orders {pending[0]}, dirty report rows {pending[1]};"
        f" queues {' '.join(f'{k} {v}' for k, v in queues.items()) or 'not sampled'}"
    )
    print(
        "  tables (size / dead tuples): "
        + ", ".join(
            f"{name} {size / 2**20:.1f} MiB / {dead}"
            for name, (size, dead) in sorted(tables.items(), key=lambda kv: -kv[1][0])
        ),
        flush=True,
    )


async def monitor(
    soak: Soak, target: common.Target, stop: asyncio.Event, history: list[dict]
) -> None:
    """At the end of each minute of load, print that minute."""
    memory = meters.MemoryMeter(target.up_pid)
    redis = common.redis_client(target.broker_url) if target.broker_url else None
    loop = asyncio.get_running_loop()
    with psycopg.connect(target.owner_url, autocommit=True) as db:
        index = 0
        while True:
            boundary = soak.started + 60 * (index + 1)
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, boundary - loop.time()))
                stopped = True
            except TimeoutError:
                stopped = False
            # The load can end just before the boundary of its last minute: that minute is
            # still reported (the first / last comparison needs it), the one after it is not.
            if stopped and index not in soak.minutes:
                return
            figures = {
                "memory": memory.sample(),
                "tables": await asyncio.to_thread(table_stats, db),
                "pending": await asyncio.to_thread(backlog, db, target.tenant_id),
                "queues": common.queue_depth(redis, target.namespace) if redis else {},
            }
            # Answers of requests due in this minute may still be arriving: a minute's
            # latencies are read a few seconds into the next one (all are in once stopped).
            if not stopped:
                await asyncio.sleep(2.0)
            minute = soak.minutes[index]
            figures["p99"] = common.percentile(minute.webhooks, 0.99)
            history.append(figures)
            print_minute(
                str(index + 1),
                minute,
                outstanding=soak.outstanding,
                **{k: figures[k] for k in ("memory", "tables", "pending", "queues")},
            )
            if stopped:
                return
            index += 1


async def soak_run(target: common.Target, collect_key: str, rate: int, seconds: float) -> Soak:
    soak = Soak()
    stop = asyncio.Event()
    soak.started = asyncio.get_running_loop().time() + 0.2
    watcher = asyncio.create_task(monitor(soak, target, stop, soak.history))
    await run_load(soak, target, collect_key, rate, seconds)
    stop.set()
    await watcher
    return soak


def wait_for_backlog(target: common.Target) -> float:
    started = time.monotonic()
    with psycopg.connect(target.owner_url, autocommit=True) as db:
        while time.monotonic() - started < DRAIN_TIMEOUT:
            if backlog(db, target.tenant_id) == (0, 0):
                return time.monotonic() - started
            time.sleep(0.2)
    return float("nan")


_CHECKS = """
SELECT
  (SELECT count(DISTINCT a.event_id) FROM soak_events a) AS distinct_events,
  (SELECT count(*) FROM soak_events a JOIN webhook_events w
     ON w.tenant_id = %(t)s AND w.event_id = a.event_id) AS stored_events,
  (SELECT count(*) FROM soak_orders) AS orders,
  (SELECT count(*) FROM (
     SELECT so.order_id
     FROM soak_orders so
     JOIN orders o ON o.tenant_id = %(t)s AND o.provider = 'shopify'
                  AND o.external_order_id = so.order_id
     JOIN allocation_summary s ON s.tenant_id = o.tenant_id AND s.order_id = o.order_id
     GROUP BY so.order_id, so.revenue
     HAVING count(*) = count(DISTINCT s.model) AND count(DISTINCT s.model) >= %(models)s
        AND bool_and(s.is_balanced) AND min(s.revenue_cents) = so.revenue
        AND max(s.revenue_cents) = so.revenue
  ) ok) AS attributed_once,
  (SELECT count(*) FROM soak_orders so
     JOIN orders o ON o.tenant_id = %(t)s AND o.provider = 'shopify'
                  AND o.external_order_id = so.order_id
     JOIN order_attributions a ON a.tenant_id = o.tenant_id AND a.order_id = o.order_id
     WHERE a.visitor_id IS NOT NULL) AS stitched
"""


# Orders that are not attributed once, a few, with what was found.
_NOT_ONCE = """
SELECT so.order_id, so.revenue, count(s.model), count(DISTINCT s.model),
       count(*) FILTER (WHERE s.is_balanced), min(s.revenue_cents), max(s.revenue_cents),
       string_agg(DISTINCT s.model, ',')
FROM soak_orders so
LEFT JOIN orders o ON o.tenant_id = %(t)s AND o.provider = 'shopify'
                  AND o.external_order_id = so.order_id
LEFT JOIN allocation_summary s ON s.tenant_id = o.tenant_id AND s.order_id = o.order_id
GROUP BY so.order_id, so.revenue
HAVING NOT (count(s.model) = count(DISTINCT s.model) AND count(DISTINCT s.model) >= %(models)s
            AND coalesce(bool_and(s.is_balanced), false) AND min(s.revenue_cents) = so.revenue
            AND max(s.revenue_cents) = so.revenue)
LIMIT 5
"""


def verify(target: common.Target, soak: Soak) -> dict[str, int]:
    with psycopg.connect(target.owner_url) as db:
        db.execute("CREATE TEMP TABLE soak_events (event_id uuid NOT NULL)")
        db.execute("CREATE TEMP TABLE soak_orders (order_id text PRIMARY KEY, revenue bigint)")
        with db.cursor().copy("COPY soak_events (event_id) FROM STDIN") as copy:
            for event_id in soak.events:
                copy.write_row((uuid.UUID(event_id),))
        with db.cursor().copy("COPY soak_orders (order_id, revenue) FROM STDIN") as copy:
            for order_id, refunded in soak.orders.items():
                copy.write_row((str(order_id), ORDER_CENTS - (REFUND_CENTS if refunded else 0)))
        params = {"t": target.tenant_id, "models": MODELS}
        row = db.execute(_CHECKS, params).fetchone()
        for bad in db.execute(_NOT_ONCE, params).fetchall():
            print(
                "NOT ATTRIBUTED ONCE: order {} expected revenue {}: {} rows, {} models,"
                " {} balanced, revenue {}..{}, models {}".format(*bad),
                file=sys.stderr,
            )
        names = ("distinct_events", "stored_events", "orders", "attributed_once", "stitched")
        return dict(zip(names, row))


def collect_key_for(target: common.Target, args: argparse.Namespace) -> str:
    if args.collect_key:
        return args.collect_key
    if target.collect_key:
        return target.collect_key
    sys.exit("attached to a running system: give --collect-key (a collect key of --tenant)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_target_arguments(parser)
    parser.add_argument("--collect-key", help="a collect key of the tenant (when attaching)")
    parser.add_argument(
        "--rate", type=int, default=RATE, help=f"webhooks per second (half the sustained) [{RATE}]"
    )
    parser.add_argument("--minutes", type=float, default=MINUTES, help=f"of load [{MINUTES:g}]")
    common.add_rows_argument(parser)
    args = parser.parse_args()
    if args.rate < 1 or args.minutes <= 0:
        parser.error("--rate must be at least 1 and --minutes above 0")
    seconds = args.minutes * 60
    with common.target_from(args) as target:
        key = collect_key_for(target, args)
        print(
            f"soak: {args.rate} webhooks/s for {args.minutes:g} min (one in {REFUND_EVERY} a"
            f" refund), one touchpoint post per {TICK_SECONDS * 1000:.0f} ms,"
            f" {CONNECTIONS} connections",
            flush=True,
        )
        soak = asyncio.run(soak_run(target, key, args.rate, seconds))
        drained = wait_for_backlog(target)
        checks = verify(target, soak)
    common.finish(
        args,
        f"soak, {args.rate} webhooks/s for {args.minutes:g} min, one API process and one worker",
        report(soak, checks, drained, args),
    )


def report(
    soak: Soak, checks: dict[str, int], drained: float, args: argparse.Namespace
) -> list[tuple[str, str, str, str]]:
    """Print the totals; return the table's rows: first against last minute (flat), and the
    checks that every webhook was answered 200, stored once and attributed once."""
    history = soak.history
    answered = len(soak.events)
    sent = sum(
        len(m.webhooks) + sum(v for k, v in m.failures.items() if not k.startswith("touch"))
        for m in soak.minutes.values()
    )
    refunds = sum(soak.orders.values())
    print(
        f"\nsent {sent} webhooks ({len(soak.orders)} orders answered 200, {refunds} refunded),"
        f" {soak.touchpoints_sent} touchpoints ({soak.touchpoints_accepted} accepted);"
        f" backlog clear {drained:.1f}s after the load"
    )
    rows = []
    if len(history) >= 2:
        first, last = history[0], history[-1]
        for part in ("api", "worker"):
            a, b = first["memory"].get(part), last["memory"].get(part)
            if a and b:
                rows.append(
                    (
                        f"{part} RSS, first / last minute",
                        f"{meters.mib(a)} / {meters.mib(b)}",
                        "flat (< +10 %)",
                        common.verdict(b <= a * 1.10),
                    )
                )
        rows.append(
            (
                "webhook p99, first / last minute",
                f"{first['p99']:.1f} / {last['p99']:.1f} ms",
                "flat (last <= max(2x first, 50 ms)), <= 500 ms",
                common.verdict(last["p99"] <= max(2 * first["p99"], 50) and last["p99"] <= 500),
            )
        )
        # Sampled at minute boundaries, the debounced chain's backlog jitters by up to about a
        # second of arrivals: more than that between the first minute and the last is growth.
        grew = last["pending"][0] - first["pending"][0]
        rows.append(
            (
                "pending orders, first / last minute",
                f"{first['pending'][0]} / {last['pending'][0]}",
                "flat (last <= first + 1 s of arrivals)",
                common.verdict(grew <= args.rate),
            )
        )
        worst = max(h["pending"][0] for h in history)
        rows.append(
            (
                "pending orders, largest minute sample",
                str(worst),
                "bounded (<= rate)",
                common.verdict(worst <= args.rate),
            )
        )
    else:
        rows.append(
            (
                "first / last minute (memory, p99, backlog)",
                "one minute only",
                "flat",
                "not measured (needs --minutes 2 or more)",
            )
        )
    rows += [
        ("webhooks answered 200", f"{answered} / {sent}", "all", common.verdict(answered == sent)),
        (
            "distinct stored events of those",
            f"{checks['stored_events']} / {answered}",
            "all, once",
            common.verdict(checks["stored_events"] == checks["distinct_events"] == answered),
        ),
        (
            "orders attributed once (each model once, balanced, net)",
            f"{checks['attributed_once']} / {checks['orders']}",
            "all",
            common.verdict(checks["attributed_once"] == checks["orders"]),
        ),
        (
            "orders stitched to a visitor",
            f"{checks['stitched']} / {checks['orders']}",
            "most (touchpoints mixed in)",
            "",
        ),
        (
            "backlog clear after the load",
            f"{drained:.1f} s",
            "<= 5 s",
            common.verdict(drained <= 5),
        ),
    ]
    return rows


if __name__ == "__main__":
    main()
