"""The lifecycle shared by the embedded servers: prepare, take over a leftover, spawn, wait, stop."""

from __future__ import annotations

import abc
import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from skeldir.embedded import process, service_account

logger = logging.getLogger(__name__)


class SupervisedServer(abc.ABC):
    """A server for `data_dir`, reachable only through a Unix socket.

    The server stops when the thread that called `start()` exits, even by SIGKILL.
    It runs in `data_dir/<work_dir_name>` and appends its output to
    `data_dir/log/<work_dir_name>.log`.
    """

    name: ClassVar[str]
    executable: ClassVar[Path]
    # What the service user must reach to run the server.
    install_path: ClassVar[Path]
    work_dir_name: ClassVar[str]
    socket_name: ClassVar[str]
    pid_file_name: ClassVar[str]
    # Sent by the kernel when the supervising thread exits.
    death_signal: ClassVar[signal.Signals]
    shutdown_signals: ClassVar[tuple[signal.Signals, ...]]
    not_ready_errors: ClassVar[tuple[type[Exception], ...]]
    # What start() waits for, for its error message: "answer PING".
    readiness: ClassVar[str]

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.work_dir = self.data_dir / self.work_dir_name
        self.pid_path = self.work_dir / self.pid_file_name
        self.log_path = self.data_dir / "log" / f"{self.work_dir_name}.log"
        self._socket_dir = service_account.socket_dir_for(self.data_dir, self.socket_name)
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    @property
    def socket_path(self) -> Path:
        return self._socket_dir / self.socket_name

    @abc.abstractmethod
    def _command(self) -> Sequence[str | os.PathLike[str]]: ...

    @abc.abstractmethod
    def _prepare_work_dir(self, user: pwd.struct_passwd | None, deadline: float) -> None:
        """Create or update what the server reads at start, before the deadline."""

    @abc.abstractmethod
    def _answers(self) -> bool:
        """Whether the server answers on its socket; may raise one of `not_ready_errors`."""

    def _release_unrelated_pid(self, pid: int) -> None:
        """The pid file names `pid`, which is not our server: by default, leave the file."""

    def start(self, timeout: float = 30.0) -> None:
        if self._server is not None and self._server.poll() is None:
            return
        deadline = time.monotonic() + timeout
        user = service_account.service_user()
        if user is not None:
            service_account.require_reachable(
                self.install_path, user, service_account.UNREACHABLE_INSTALL_REMEDY
            )
        service_account.make_data_dir(self.data_dir, user)
        service_account.make_private_dir(self.log_path.parent, user)
        service_account.make_socket_dir(self._socket_dir, self.data_dir, user)
        self._stop_leftover_server()
        self._prepare_work_dir(user, deadline)
        logger.info("starting %s in %s", self.name, self.work_dir)
        self._server = process.spawn(
            self._command(),
            self.log_path,
            user=user,
            death_signal=self.death_signal,
            cwd=self.work_dir,
        )
        try:
            self._wait_until_ready(deadline)
        except BaseException:
            self.stop()
            raise
        logger.info("%s is ready on %s", self.name, self.socket_path)

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is None:
            return
        logger.info("stopping %s in %s", self.name, self.work_dir)
        process.stop(self._server, self.shutdown_signals, timeout)
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

    def _stop_leftover_server(self) -> None:
        try:
            pid = int(self.pid_path.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return
        if not process.stop_leftover(
            pid, self.executable, self.work_dir, self.shutdown_signals, timeout=30.0
        ):
            self._release_unrelated_pid(pid)

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._server is not None
        last_error: Exception | None = None
        while True:
            returncode = self._server.poll()
            if returncode is not None:
                raise process.ProcessError(
                    f"{self.executable.name} exited with {returncode} while starting\n"
                    f"{process.log_tail(self.log_path)}"
                )
            try:
                if self._answers():
                    return
            except self.not_ready_errors as error:
                last_error = error
            if time.monotonic() > deadline:
                raise process.ProcessError(
                    f"{self.name} did not {self.readiness} on {self.socket_path} in time: "
                    f"{last_error}\n{process.log_tail(self.log_path)}"
                )
            time.sleep(process.POLL_INTERVAL)
