"""Ingest through HAProxy with two API hosts against one, same run, same machine.

    .venv/bin/python bench/cluster.py [--seconds 10]      # root: network namespaces

Builds the cluster of the cluster test (tests/cluster/cluster.py: two API hosts behind
HAProxy, two worker hosts, a PostgreSQL primary and its replica, Redis, each in a network
namespace) with rate limits off, then runs wrk on the load balancer's host against HAProxy:
two API hosts, then one (the other killed and HAProxy's health check seeing it down), then two
again (it restarted), so a drift of the machine shows as a difference between the two-host
runs. Accepted means new webhook_events rows. All hosts share this machine's cores: the figures
show the cost of the extra hop and processes, not what more machines would add.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

import common
import ingest

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "cluster")]

from cluster import SHOPIFY_SECRET, Cluster, poll  # noqa: E402
from network import namespaces_supported  # noqa: E402


def stored(cluster: Cluster, tenant_id) -> int:
    with psycopg.connect(cluster.owner_socket_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM webhook_events WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()[0]


def run(cluster: Cluster, tenant: dict, wrk: str, seconds: int, label: str) -> list[tuple]:
    prefix = cluster.directory / f"requests-{label.replace(' ', '-')}"
    ids = common.run_order_ids(ingest.ORDERS_PER_SECOND * (seconds + 2))
    target_url = cluster.lb_url + tenant["url"].split(cluster.lb_url, 1)[1]
    bodies = (common.order_body(i) for i in ids)
    ingest.write_requests(prefix, [
        common.raw_post(target_url, body, common.signature(SHOPIFY_SECRET, body))
        for body in bodies
    ])
    before = stored(cluster, tenant["tenant_id"])
    command = [*cluster.network.run_in("lb"), wrk, f"-t{ingest.THREADS}",
               f"-c{ingest.CONNECTIONS}", f"-d{seconds}s", "--latency", "-s",
               str(ingest.REPLAY_LUA), cluster.lb_url, "--", str(prefix)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = ingest.parse_wrk(done.stdout, {})
    accepted = (stored(cluster, tenant["tenant_id"]) - before) / result.seconds
    print(f"{label}: {accepted:,.0f} accepted/s, {result.rps:,.0f} answers/s, "
          f"p50 {result.latency_ms.get('50', 0):.1f} ms, p99 {result.latency_ms.get('99', 0):.1f}"
          f" ms, non-2xx {result.non_2xx}")
    return [(f"{label}: accepted", f"{accepted:,.0f}/s", "-", ""),
            (f"{label}: p99", f"{result.latency_ms.get('99', 0):.0f} ms", "-", "")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    reason = namespaces_supported()
    if reason:
        sys.exit(reason)
    wrk = ingest.require_wrk()
    directory = Path(tempfile.mkdtemp(prefix="skb-cluster-"))
    directory.chmod(0o711)
    cluster = Cluster(directory, webhooks_per_second=0, burst=0)
    try:
        cluster.start()
        tenant = cluster.create_tenant("bench")
        rows = run(cluster, tenant, wrk, args.seconds, "two API hosts")
        cluster.kill("api2")
        poll("HAProxy sees api2 down", lambda: cluster.http(
            "lb", f"http://{cluster.address('api2')}:8000/healthz") == 0, 10, cluster.logs)
        rows += run(cluster, tenant, wrk, args.seconds, "one API host")
        cluster.start_api("api2")
        rows += run(cluster, tenant, wrk, args.seconds, "two API hosts again")
        common.print_table("Ingest through HAProxy (all hosts on this machine's 2 cores)", rows)
    finally:
        cluster.close()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
