"""Child processes: spawned with a death signal, run to completion, stopped by escalation."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import psutil

logger = logging.getLogger(__name__)

ESCALATION_WAIT = 5.0
POLL_INTERVAL = 0.05

_PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A supervised process failed to start, finish or stop."""


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(death_signal: signal.Signals = signal.SIGTERM) -> None:
    """Have the kernel send `death_signal` to this process when its parent thread exits."""
    if _libc().prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _die_with(death_signal: signal.Signals, parent_pid: int) -> Callable[[], None]:
    _libc()  # loaded before fork: the child must not dlopen

    def in_child() -> None:
        die_with_parent(death_signal)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return in_child


def spawn(
    args: Sequence[str | os.PathLike[str]],
    log_path: Path,
    *,
    user: pwd.struct_passwd | None,
    death_signal: signal.Signals,
    cwd: Path,
) -> subprocess.Popen[bytes]:
    """Start `args` with stdout and stderr appended to `log_path`, as `user` when given.

    The child receives `death_signal` when the thread that spawned it exits, however it
    exits (even by SIGKILL): call this from a thread that lives as long as the service.
    """
    with _open_log(log_path, user) as log:
        return subprocess.Popen(
            [os.fspath(arg) for arg in args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            # A terminal's Ctrl-C reaches only the supervisor, which then stops the service.
            start_new_session=True,
            umask=0o077,
            # Runs after the switch to `user`, which would clear the death signal.
            preexec_fn=_die_with(death_signal, os.getpid()),  # noqa: PLW1509 (async-signal-safe)
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
        )


def spawn_attached(
    args: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `args` as ourselves, writing to our stderr, dying (SIGTERM) with us.

    Its stdout goes to our stderr too: our stdout carries only what callers parse (READY).
    """
    return subprocess.Popen(
        [os.fspath(arg) for arg in args],
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr.fileno(),
        env=env,
        start_new_session=True,
        preexec_fn=_die_with(signal.SIGTERM, os.getpid()),  # noqa: PLW1509 (async-signal-safe)
    )


def run(
    args: Sequence[str | os.PathLike[str]],
    log_path: Path,
    *,
    user: pwd.struct_passwd | None,
    cwd: Path,
    timeout: float,
) -> None:
    """Run `args` to completion like `spawn`; raise with the log tail if it fails or overruns."""
    process = spawn(args, log_path, user=user, death_signal=signal.SIGKILL, cwd=cwd)
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(process, [signal.SIGKILL], ESCALATION_WAIT)
        raise ProcessError(
            f"{args[0]} did not finish within {timeout:.0f}s\n{log_tail(log_path)}"
        ) from None
    if returncode != 0:
        raise ProcessError(f"{args[0]} exited with {returncode}\n{log_tail(log_path)}")


def _open_log(log_path: Path, user: pwd.struct_passwd | None) -> BinaryIO:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    if user is not None:
        os.fchown(fd, user.pw_uid, user.pw_gid)
    return os.fdopen(fd, "ab")


def log_tail(log_path: Path, max_bytes: int = 4000) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - max_bytes))
            tail = log.read().decode(errors="replace")
    except FileNotFoundError:
        return f"(no log at {log_path})"
    return f"last lines of {log_path}:\n{tail}"


def stop(
    process: subprocess.Popen[bytes], signals: Sequence[signal.Signals], timeout: float
) -> None:
    """Send each signal in turn until `process` exits and is reaped.

    The first signal gets `timeout` seconds, each later one ESCALATION_WAIT.
    """
    if process.poll() is not None:
        return

    def exited(wait: float) -> bool:
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            return False
        return True

    _escalate(psutil.Process(process.pid), signals, timeout, exited)


def stop_leftover(
    pid: int, executable: Path, cwd: Path, signals: Sequence[signal.Signals], timeout: float
) -> bool:
    """Stop a service left by an earlier supervisor; False if `pid` is not that service.

    A pid is only trusted if it runs `executable` from `cwd` (both services chdir to their
    data directory), so a recycled pid is never signalled.
    """
    process = find_process(pid, executable, cwd)
    if process is None:
        return False
    logger.warning("stopping leftover %s (pid %d) in %s", executable.name, pid, cwd)

    def exited(wait: float) -> bool:
        deadline = time.monotonic() + wait
        while _is_alive(process):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True

    _escalate(process, signals, timeout, exited)
    return True


def find_process(pid: int, executable: Path, cwd: Path) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        if Path(process.exe()) == executable.resolve() and Path(process.cwd()) == cwd.resolve():
            return process
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        pass
    return None


def processes_running(executable: Path, cwd: Path) -> list[psutil.Process]:
    """Every live process that runs `executable` from `cwd`, children included."""
    found = []
    for process in psutil.process_iter():
        if find_process(process.pid, executable, cwd) is not None and _is_alive(process):
            found.append(process)
    return found


def _is_alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _escalate(
    process: psutil.Process,
    signals: Sequence[signal.Signals],
    timeout: float,
    exited: Callable[[float], bool],
) -> None:
    for attempt, sig in enumerate(signals):
        if sig == signal.SIGKILL:
            # Children of a killed parent are orphaned, not stopped: take them along.
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(sig)
        if exited(timeout if attempt == 0 else ESCALATION_WAIT):
            return
        logger.warning("pid %d did not exit after %s", process.pid, sig.name)
    raise ProcessError(f"pid {process.pid} still runs after {[s.name for s in signals]}")
