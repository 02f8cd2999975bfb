"""What a run's processes cost: the cores each part of the system keeps busy, its memory, and
the CPU of the PostgreSQL backends serving each role.

They look at the processes of a system this run started (`skeldir up` and its children): an
attached system is not ours to inspect, so then only the machine as a whole is measured.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import psutil
import psycopg


class CpuMeter:
    """Cores busy between start() and stop(): the load generator (this process and the children
    it waited for, i.e. wrk), each part of the system when this run started it, and the rest."""

    GROUPS = (
        ("api", " skeldir api "),
        ("worker", " skeldir worker "),
        ("postgres", "postgres"),
        ("redis", "redis-server"),
    )

    def __init__(self, up_pid: int | None, named: dict[str, int] | None = None) -> None:
        self.up_pid = up_pid
        # Processes of this run outside the system, by part name (the bare verify-only app).
        self.named = named or {}

    def _sample(self) -> dict[int, tuple[str, float]]:
        seen = {}
        for group, pid in self.named.items():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                seen[pid] = (group, times.user + times.system)
        if self.up_pid is None:
            return seen
        up = psutil.Process(self.up_pid)
        for proc in [up, *up.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                cmdline = " " + " ".join(proc.cmdline()) + " "
                group = next((g for g, needle in self.GROUPS if needle in cmdline), "other")
                group = "supervisor" if proc.pid == self.up_pid else group
                times = proc.cpu_times()
                seen[proc.pid] = (group, times.user + times.system)
        return seen

    def start(self) -> None:
        self._before = self._sample()
        self._machine = psutil.cpu_times()
        self._children = os.times()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Cores used per part (1.0 = one core busy); processes that exited meanwhile are lost.
        `wall` keeps the seconds measured: share x wall is CPU seconds."""
        wall = self.wall = time.monotonic() - self._wall
        after = self._sample()
        children = os.times()
        shares: dict[str, float] = {}
        for pid, (group, seconds) in after.items():
            used = seconds - self._before.get(pid, (group, 0.0))[1]
            shares[group] = shares.get(group, 0.0) + used / wall
        shares["load generator"] = (sum(children[:4]) - sum(self._children[:4])) / wall
        busy = (_busy_seconds(psutil.cpu_times()) - _busy_seconds(self._machine)) / wall
        # Whatever else runs on the machine (other people's tests) competes for the same cores;
        # attached to a system we did not start, its processes are counted here too.
        rest = "rest of machine" if self.up_pid else "system and rest of machine"
        shares[rest] = max(0.0, busy - sum(shares.values()))
        return shares


def _busy_seconds(times) -> float:
    return times.user + times.nice + times.system + times.irq + times.softirq + times.steal


def format_shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.2f}" for name, share in shares.items())


class MemoryMeter:
    """Resident memory (RSS) of the API and the worker of a system this run started: the
    largest seen by a thread sampling every `interval` seconds between start() and stop()."""

    GROUPS = (("api", " skeldir api "), ("worker", " skeldir worker "))

    def __init__(self, up_pid: int | None, interval: float = 0.25) -> None:
        self.up_pid = up_pid
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak: dict[str, int] = {}

    def sample(self, proportional: bool = False) -> dict[str, int]:
        """Bytes per part now; a part of several processes is their sum (RSS counts the pages
        they share once per process). `proportional` gives PSS instead (each shared page divided
        among its sharers; slower, it reads smaps)."""
        if self.up_pid is None:
            return {}
        rss: dict[str, int] = {}
        for proc in psutil.Process(self.up_pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmdline = " " + " ".join(proc.cmdline()) + " "
                group = next((g for g, needle in self.GROUPS if needle in cmdline), None)
                if group is not None:
                    size = proc.memory_full_info().pss if proportional else proc.memory_info().rss
                    rss[group] = rss.get(group, 0) + size
        return rss

    def start(self) -> None:
        self.peak = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            for group, rss in self.sample().items():
                self.peak[group] = max(self.peak.get(group, 0), rss)
            if self._stop.wait(self.interval):
                return

    def stop(self) -> dict[str, int]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return dict(self.peak)


def mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:,.0f} MiB"


class BackendCpuMeter:
    """CPU seconds of the PostgreSQL backends of some roles between start() and stop().

    The roles come from pg_stat_activity.usename (the API connects as the runtime role, the
    worker as its own), so one server's CPU splits by who asked for the work. A thread maps
    backend pids to roles every `interval` seconds and reads each one's CPU time: backends that
    come and go meanwhile (a pool's new connections, parallel workers) count up to their last
    sample, those born after start() from zero. Needs the server on this machine and its
    processes readable (an embedded PostgreSQL this run started)."""

    def __init__(self, owner_url: str, roles: list[str], interval: float = 0.25) -> None:
        self.owner_url = owner_url
        self.roles = list(roles)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}

    def _sample(self, conn, baseline: bool = False) -> None:
        rows = conn.execute(
            "SELECT pid, usename FROM pg_stat_activity WHERE usename = ANY(%s)", (self.roles,)
        ).fetchall()
        for pid, role in rows:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                seconds = times.user + times.system
                self._first.setdefault(pid, seconds if baseline else 0.0)
                self._last[pid] = (role, seconds)

    def start(self) -> None:
        self._first, self._last = {}, {}
        self._stop.clear()
        self._conn = psycopg.connect(self.owner_url, autocommit=True)
        self._sample(self._conn, baseline=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(self._conn)

    def stop(self) -> dict[str, float]:
        """CPU seconds per role (0.0 for a role with no backend seen)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(self._conn)
        self._conn.close()
        used = dict.fromkeys(self.roles, 0.0)
        for pid, (role, seconds) in self._last.items():
            used[role] += seconds - self._first[pid]
        return used
