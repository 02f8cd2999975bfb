"""Skeldir on several test hosts: a PostgreSQL primary and its streaming replica, Redis, two API
hosts behind HAProxy and two worker hosts (the first with beat), each in its own network
namespace, talking over the test network only.

PostgreSQL is prepared on its Unix socket first (initdb, roles, migrations, the base backup),
then run on its host's address; the test process keeps reaching it through that socket, which
is a file and so crosses namespaces, to check what the hosts stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from network import SUBNET, Network
from streaming_replica import EmbeddedStandby

from databases import new_roles
from polling import poll

from skeldir.base.config import Settings
from skeldir.base.crypto import new_secret_key, secret_box
from skeldir.deployment import migrate
from skeldir.deployment.provision import provision, role_url
from skeldir.embedded.postgres import POSTGRES, EmbeddedPostgres
from skeldir.embedded.redis import REDIS_SERVER
from skeldir.embedded.service_account import make_socket_dir, service_user
from skeldir.operations import tenants

SHOPIFY_SECRET = "shpss_cluster_secret"
API_PORT = 8000
LB_PORT = 8080
REPO = Path(__file__).resolve().parents[2]
SKELDIR = Path(sys.executable).parent / "skeldir"
HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "skeldir.cfg"
# Hosts and their last address octet on the test network.
HOSTS = {"db": 2, "replica": 3, "redis": 4, "lb": 10, "api1": 11, "api2": 12,
         "worker1": 21, "worker2": 22}
# The cluster's webhook rate limit: low enough that a flood through both API hosts is measured
# against it in a few seconds, and above the steady load the tests send.
WEBHOOKS_PER_SECOND = 12.0
BURST = 12.0


def _tail(path: Path, size: int = 3000) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "(no log)"
    return data[-size:].decode(errors="replace")


class Cluster:
    def __init__(self, directory: Path, *, webhooks_per_second: float, burst: float) -> None:
        self.directory = directory
        self.network = Network()
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs_dir = directory / "logs"
        self.logs_dir.mkdir()
        self.primary = EmbeddedPostgres(directory / "primary")
        self.standby = EmbeddedStandby(directory / "replica", self.primary)
        self.limits = (webhooks_per_second, burst)
        self.settings: Settings | None = None
        self.owner_socket_url = ""

    def address(self, host: str) -> str:
        return self.network.addresses[host]

    @property
    def lb_url(self) -> str:
        return f"http://{self.address('lb')}:{LB_PORT}"

    # --- starting -------------------------------------------------------------------------

    def start(self) -> None:
        for host, octet in HOSTS.items():
            self.network.add_host(host, octet)
        roles = self._prepare_database()
        self._start_postgres("db", self.primary)
        self.standby.start()  # the base backup, over the primary's socket
        self.standby.stop()
        self._start_postgres(
            "replica", self.standby,
            f"primary_conninfo=host={self.address('db')} port=5432 user=postgres",
        )
        self._start("redis", [REDIS_SERVER, "--bind", self.address("redis"), "--port", "6379",
                              "--protected-mode", "no", "--save", "", "--appendonly", "no"])
        db, replica, redis = self.address("db"), self.address("replica"), self.address("redis")
        tcp = f"postgresql://postgres@{db}:5432/postgres"
        webhooks_per_second, burst = self.limits
        self.settings = Settings(
            data_dir=self.directory / "skeldir",
            database_url=role_url(tcp, roles.database, roles.runtime),
            owner_database_url=role_url(tcp, roles.database, roles.owner),
            worker_database_url=role_url(tcp, roles.database, roles.worker),
            read_database_url=role_url(tcp.replace(db, replica), roles.database, roles.runtime),
            broker_url=f"redis://{redis}:6379/0",
            rate_limit_redis_url=f"redis://{redis}:6379/1",
            rate_limit_webhooks_per_second=webhooks_per_second,
            rate_limit_webhooks_burst=burst,
            secret_key=new_secret_key(),
            public_url=self.lb_url,
            queue_namespace=f"skt-cluster-{uuid.uuid4().hex[:8]}",
            sweep_interval_seconds=1.0,
            sweep_grace_seconds=2.0,
            chain_stale_seconds=5.0,
            # First learned weights would re-attribute the orders just after they converged
            # (see tests/faults/fault_system.py).
            learn_min_conversions=0,
        )
        self.owner_socket_url = role_url(self.primary.dsn(), roles.database, roles.owner)
        for host in ("api1", "api2"):
            self.start_api(host)
        self.start_worker("worker1", beat=True)
        self.start_worker("worker2", beat=False)
        self._start_haproxy()

    def _prepare_database(self):
        self.primary.start()
        roles = new_roles()
        provision(self.primary.dsn(), roles)
        socket = self.primary.dsn()
        migrate.upgrade(Settings(
            owner_database_url=role_url(socket, roles.database, roles.owner),
            database_url=role_url(socket, roles.database, roles.runtime),
            worker_database_url=role_url(socket, roles.database, roles.worker),
        ))
        self.primary.stop()
        with (self.primary.pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n"
                      f"host replication all {SUBNET}.0/24 trust\n")
        return roles

    def _start_postgres(self, host: str, server: EmbeddedPostgres, *settings: str) -> None:
        user = service_user()
        make_socket_dir(server.socket_dir, server.data_dir, user)
        command = [POSTGRES, "-D", str(server.pgdata), "-c",
                   f"listen_addresses={self.address(host)}"]
        for setting in settings:
            command += ["-c", setting]
        if user is not None:
            command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                       "--init-groups", *command]
        self._start(host, command)

        def answers() -> bool:
            try:
                with psycopg.connect(server.dsn(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return False

        poll(f"PostgreSQL on {host} accepts connections", answers, 60, lambda: self.log(host))

    def _start(self, host: str, command: list, env: dict | None = None) -> subprocess.Popen:
        log = (self.logs_dir / f"{host}.log").open("ab")
        process = subprocess.Popen(
            [*self.network.run_in(host), *map(str, command)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.directory,
            start_new_session=True,
        )
        log.close()
        self.processes[host] = process
        return process

    def _skeldir_env(self) -> dict[str, str]:
        return {**os.environ, **self.settings.as_env()}

    def start_api(self, host: str) -> None:
        self._start(host, [SKELDIR, "api", "--host", self.address(host), "--port", API_PORT],
                    self._skeldir_env())
        poll(f"the API on {host} is healthy",
             lambda: self.http(host, f"http://{self.address(host)}:{API_PORT}/healthz") == 200,
             60, lambda: self.log(host))

    def start_worker(self, host: str, *, beat: bool) -> None:
        self._start(host, [SKELDIR, "worker", "--beat" if beat else "--no-beat"],
                    self._skeldir_env())

    def _start_haproxy(self) -> None:
        # The configuration shipped for deployments, with this network's addresses.
        env = {**os.environ, "SKELDIR_LB_BIND": f"{self.address('lb')}:{LB_PORT}",
               "SKELDIR_API1": f"{self.address('api1')}:{API_PORT}",
               "SKELDIR_API2": f"{self.address('api2')}:{API_PORT}"}
        self._start("lb", ["haproxy", "-W", "-db", "-f", HAPROXY_CONFIG], env)
        poll("HAProxy answers", lambda: self.http("lb", f"{self.lb_url}/healthz") == 200, 30,
             lambda: self.log("lb"))

    # --- acting on hosts ------------------------------------------------------------------

    def kill(self, host: str) -> None:
        """SIGKILL every process of the host, as when the machine is switched off."""
        process = self.processes.pop(host)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def http(self, host: str, url: str, headers: dict | None = None) -> int:
        """The status of a GET of `url` made from `host` (0 when nothing answered)."""
        command = [*self.network.run_in(host), "curl", "-s", "-o", "/dev/null", "-w",
                   "%{http_code}", "--max-time", "5", url]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=15)
        return int(result.stdout or 0)

    def post(self, host: str, url: str, body: bytes, headers: dict) -> int:
        """The status of a POST of `body` to `url` made from `host` (0 when nothing answered)."""
        path = self.directory / f"body-{uuid.uuid4().hex[:6]}"
        path.write_bytes(body)
        command = [*self.network.run_in(host), "curl", "-s", "-o", "/dev/null", "-w",
                   "%{http_code}", "--max-time", "5", "--data-binary", f"@{path}", url]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=15)
        path.unlink()
        return int(result.stdout or 0)

    def get_text(self, host: str, url: str, headers: dict | None = None) -> str:
        """The body of a GET of `url` made from `host`; fails unless it is answered 2xx."""
        command = [*self.network.run_in(host), "curl", "-s", "--fail", "--max-time", "10", url]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=15, check=True)
        return result.stdout

    def get_json(self, host: str, url: str, headers: dict) -> dict:
        return json.loads(self.get_text(host, url, headers))

    def load(self, spec: dict) -> subprocess.Popen:
        """Run the load driver on the load balancer's host with `spec`; it writes `spec['out']`."""
        path = self.directory / f"load-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(spec))
        log = (self.logs_dir / "load.log").open("ab")
        process = subprocess.Popen(
            [*self.network.run_in("lb"), sys.executable, REPO / "tests/cluster/load.py", path],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return process

    def create_tenant(self, name: str) -> dict:
        box = secret_box(self.settings)
        with psycopg.connect(self.owner_socket_url) as conn:
            tenant = tenants.create_tenant(conn, box, name)
            source = tenants.add_source(conn, box, tenant_id=tenant.tenant_id, provider="shopify",
                                        secret=SHOPIFY_SECRET, public_url=self.lb_url)
        return {"tenant_id": tenant.tenant_id, "api_key": tenant.api_key, "url": source.url,
                "source_id": source.source_id}

    # --- looking ------------------------------------------------------------------------------

    def log(self, host: str) -> str:
        return f"--- {host} ---\n{_tail(self.logs_dir / f'{host}.log')}"

    def logs(self) -> str:
        return "\n".join(self.log(host) for host in (*HOSTS, "load"))

    def close(self) -> None:
        for host in list(self.processes):
            try:
                self.kill(host)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.network.remove()
