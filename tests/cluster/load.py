"""The cluster test's webhook sender, run on the load balancer's host: `python load.py SPEC`.

SPEC (JSON) names the URL, the Shopify secret, and per stream a source path, a first order id,
a rate (0: as fast as `concurrency` allows), a duration or a number of orders, and how many
attempts an order gets. A retrying stream
sends each order until it is answered 200, as a provider does; the driver writes, per stream,
the orders answered 200, those never answered 200 and the count of each status, to SPEC's
`out`, and the count of orders answered so far to `progress`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from collections import Counter
from pathlib import Path

import httpx


def _headers(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}


async def _stream(client: httpx.AsyncClient, spec: dict, stream: dict, progress: Counter) -> dict:
    answered, never, statuses, latencies = [], [], Counter(), []
    deadline = time.monotonic() + stream.get("seconds", 3600)
    last_order = stream["first_order"] + stream.get("orders", 10**9) - 1
    next_order = stream["first_order"]
    interval = 1 / stream["rate"] if stream["rate"] else 0.0
    started = time.monotonic()

    async def send(order_id: int) -> None:
        body = json.dumps({"id": order_id, "total_price": "10.50", "currency": "USD",
                           "created_at": "2026-01-25T12:34:56Z"}).encode()
        for _attempt in range(stream.get("attempts", 1)):
            sent_at = time.monotonic()
            try:
                response = await client.post(spec["url"] + stream["path"], content=body,
                                             headers=_headers(spec["secret"], body))
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.monotonic() - sent_at)
            statuses[status] += 1
            if status == 200:
                answered.append(order_id)
                progress[stream["name"]] += 1
                return
            await asyncio.sleep(0.2)
        never.append(order_id)

    running: set[asyncio.Task] = set()
    while time.monotonic() < deadline and next_order <= last_order:
        if interval:
            # Paced: order n leaves at started + n * interval, however long answers take.
            due = started + (next_order - stream["first_order"]) * interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        else:
            while len(running) >= stream["concurrency"]:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(send(next_order))
        running.add(task)
        task.add_done_callback(running.discard)
        next_order += 1
    if running:
        await asyncio.wait(running)
    return {"answered_200": sorted(answered), "never_200": sorted(never),
            "statuses": {str(k): v for k, v in statuses.items()},
            "seconds": round(time.monotonic() - started, 3),
            "latency_ms": _percentiles(latencies)}


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    ordered = sorted(latencies)
    return {f"p{q}": round(1000 * ordered[min(len(ordered) - 1, len(ordered) * q // 100)], 1)
            for q in (50, 99)}


async def main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    progress: Counter = Counter()

    def write_progress() -> None:
        # Renamed into place, so a reader never sees a half-written file.
        partial = Path(spec["progress"] + ".partial")
        partial.write_text(json.dumps(progress))
        partial.replace(spec["progress"])

    async def report_progress() -> None:
        while True:
            write_progress()
            await asyncio.sleep(0.1)

    reporter = asyncio.create_task(report_progress())
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        results = await asyncio.gather(*(_stream(client, spec, s, progress)
                                         for s in spec["streams"]))
    reporter.cancel()
    write_progress()
    Path(spec["out"]).write_text(json.dumps(
        {stream["name"]: result for stream, result in zip(spec["streams"], results, strict=True)}
    ))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
