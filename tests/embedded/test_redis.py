import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kombu
import psutil
import pytest
import redis
from embedded_helpers import RUNNING_AS_ROOT, is_gone, poll_until, start_supervisor

from skeldir.embedded import process
from skeldir.embedded.redis import REDIS_SERVER, EmbeddedRedis
from skeldir.embedded.service_account import service_user


@pytest.fixture
def data_dir(workspace: Path) -> Iterator[Path]:
    data_dir = workspace / "data"
    yield data_dir
    for leftover in process.processes_running(REDIS_SERVER, data_dir / "redis"):
        leftover.kill()


def client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(server.socket_path), socket_timeout=2)


def answers_ping(server: EmbeddedRedis) -> bool:
    with client(server) as connection:
        try:
            return bool(connection.ping())
        except redis.ConnectionError:
            return False


def server_pids(server: EmbeddedRedis) -> list[int]:
    return [p.pid for p in process.processes_running(REDIS_SERVER, server.redis_dir)]


def server_pid(server: EmbeddedRedis) -> int:
    return int(server.pid_path.read_text())


def test_start_serves_the_socket_and_stop_removes_the_server(data_dir: Path) -> None:
    parent_mode = data_dir.parent.stat().st_mode
    server = EmbeddedRedis(data_dir)
    server.start()
    try:
        with client(server) as connection:
            connection.set("greeting", "hello")
            assert connection.get("greeting") == b"hello"
        pid = server_pid(server)
        if RUNNING_AS_ROOT:
            assert psutil.Process(pid).username() == "skeldir"
        assert stat.S_IMODE(server.socket_path.parent.stat().st_mode) == 0o700
    finally:
        server.stop()
    server.stop()

    assert is_gone(pid)
    assert not server.socket_path.exists()
    assert data_dir.parent.stat().st_mode == parent_mode


def test_kombu_accepts_the_url(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as server, kombu.Connection(server.url) as connection:
        queue = connection.SimpleQueue("probe")
        queue.put({"order": 1})
        assert queue.get(timeout=5).payload == {"order": 1}
        queue.close()


def test_restart_keeps_the_queue(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as server, client(server) as connection:
        connection.rpush("queue", "task-1")
    with EmbeddedRedis(data_dir) as server, client(server) as connection:
        assert connection.lrange("queue", 0, -1) == [b"task-1"]


def test_deep_data_dir_gets_a_short_socket_dir(workspace: Path) -> None:
    server = EmbeddedRedis(workspace / ("d" * 100))
    assert server.socket_path.parent.parent == Path("/tmp")
    try:
        with server:
            assert answers_ping(server)
    finally:
        shutil.rmtree(server.socket_path.parent, ignore_errors=True)


def test_server_stops_when_its_supervisor_is_killed(data_dir: Path) -> None:
    server = EmbeddedRedis(data_dir)
    supervisor = start_supervisor(EmbeddedRedis, data_dir)
    try:
        poll_until(
            lambda: supervisor.poll() is not None or answers_ping(server),
            30,
            lambda: process.log_tail(server.log_path),
        )
        assert supervisor.poll() is None, supervisor.communicate()[1].decode()
        with client(server) as connection:
            connection.rpush("queue", "before the kill")
        old_pid = server_pid(server)
    finally:
        supervisor.kill()
        supervisor.wait(10)

    poll_until(lambda: is_gone(old_pid), 15, lambda: process.log_tail(server.log_path))
    with server, client(server) as connection:
        assert connection.lrange("queue", 0, -1) == [b"before the kill"]
        assert server_pids(server) == [server_pid(server)]


def test_start_takes_over_a_server_left_running(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as server, client(server) as connection:
        connection.rpush("queue", "before the takeover")
    user = service_user()
    leftover = subprocess.Popen(
        [REDIS_SERVER, server.config_path],
        cwd=server.redis_dir,
        stdout=subprocess.DEVNULL,
        user=None if user is None else user.pw_uid,
        group=None if user is None else user.pw_gid,
        extra_groups=None if user is None else [],
    )
    try:
        poll_until(
            lambda: server.pid_path.exists() and answers_ping(server),
            30,
            lambda: f"leftover exit {leftover.poll()}",
        )
        with server, client(server) as connection:
            assert leftover.poll() is not None
            assert connection.lrange("queue", 0, -1) == [b"before the takeover"]
            assert server_pids(server) == [server_pid(server)]
    finally:
        leftover.kill()
        leftover.wait(10)
