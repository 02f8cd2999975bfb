"""The user the embedded services run as, and the private paths it owns and must reach."""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import stat
import subprocess
from pathlib import Path

from skeldir.embedded.process import ProcessError

logger = logging.getLogger(__name__)

SERVICE_USER_NAME = "skeldir"
# sun_path holds 108 bytes on Linux and 104 on macOS; keep a margin below both.
MAX_SOCKET_PATH_BYTES = 100
UNREACHABLE_INSTALL_REMEDY = (
    "install skeldir in a virtualenv under a path that every user may traverse (o+x)"
)


class UnreachablePathError(RuntimeError):
    """The service user cannot reach a path the service needs."""


def service_user() -> pwd.struct_passwd | None:
    """The user the services run as when started as root; None means: as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER_NAME)
    except KeyError:
        pass
    logger.info("creating system user %s", SERVICE_USER_NAME)
    created = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_USER_NAME,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(SERVICE_USER_NAME)
    except KeyError:
        raise ProcessError(
            f"could not create system user {SERVICE_USER_NAME}: {created.stderr.strip()}"
        ) from None


def require_reachable(path: Path, user: pwd.struct_passwd, remedy: str) -> None:
    """Raise unless `user` can traverse every directory down to `path` (and read it if a file).

    os.access answers for the caller, and root may go anywhere, so the mode bits decide.
    """
    path = path.resolve()
    directories = [*reversed(path.parents), *([path] if path.is_dir() else [])]
    for directory in directories:
        if not _permits(directory, user, stat.S_IXUSR):
            raise UnreachablePathError(
                f"user {user.pw_name} cannot traverse {directory} to reach {path}: {remedy}"
            )
    if not path.is_dir() and not _permits(path, user, stat.S_IRUSR):
        raise UnreachablePathError(f"user {user.pw_name} cannot read {path}: {remedy}")


def _permits(path: Path, user: pwd.struct_passwd, owner_bits: int) -> bool:
    """Whether the mode of `path` grants `owner_bits` (given as S_I*USR) to `user`."""
    status = path.stat()
    if status.st_uid == user.pw_uid:
        shift = 0
    elif status.st_gid == user.pw_gid:  # the services run with no supplementary groups
        shift = 3
    else:
        shift = 6
    wanted = owner_bits >> shift
    return status.st_mode & wanted == wanted


def make_private_dir(path: Path, user: pwd.struct_passwd | None) -> None:
    """Create `path` if missing; make it 0700 and owned by `user` when given."""
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def write_private_file(path: Path, text: str, user: pwd.struct_passwd | None) -> None:
    """Replace `path` atomically with `text`, readable only by `user` (or ourselves)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    if user is not None:
        os.chown(partial, user.pw_uid, user.pw_gid)
    partial.replace(path)


def socket_dir_for(data_dir: Path, socket_name: str) -> Path:
    """`data_dir/run`, or a short directory in /tmp when the socket path would be too long.

    A Unix socket path must fit in sun_path (108 bytes on Linux); deep data directories do not,
    so their sockets go to a directory named after a hash of the data directory.
    """
    data_dir = data_dir.resolve()
    preferred = data_dir / "run"
    if len(os.fsencode(preferred / socket_name)) <= MAX_SOCKET_PATH_BYTES:
        return preferred
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"skeldir-{digest}"


def make_socket_dir(path: Path, data_dir: Path, user: pwd.struct_passwd | None) -> None:
    """Create a socket directory; one outside `data_dir` must be nobody else's, nor open."""
    if path.is_relative_to(data_dir):
        make_private_dir(path, user)
        return
    owner = user.pw_uid if user is not None else os.geteuid()
    try:
        path.mkdir(mode=0o700)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
    except FileExistsError:
        status = path.lstat()
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != owner or status.st_mode & 0o077:
            raise ProcessError(
                f"{path} exists but is not a private directory of uid {owner}: remove it"
            ) from None


def make_data_dir(data_dir: Path, user: pwd.struct_passwd | None) -> None:
    """Create the data directory for `user`, changing nothing above it."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if user is not None:
        require_reachable(
            data_dir.parent,
            user,
            "choose a data directory under a path that every user may traverse "
            "(o+x on each directory above it), such as /var/lib/skeldir",
        )
    make_private_dir(data_dir, user)
