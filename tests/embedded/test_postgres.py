import asyncio
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import psycopg
import pytest
from embedded_helpers import RUNNING_AS_ROOT, is_gone, poll_until, start_supervisor
from psycopg.conninfo import conninfo_to_dict

from skeldir.embedded import process
from skeldir.embedded.postgres import POSTGRES, EmbeddedPostgres
from skeldir.embedded.service_account import UnreachablePathError, service_user


@pytest.fixture
def data_dir(workspace: Path) -> Iterator[Path]:
    data_dir = workspace / "data"
    yield data_dir
    for leftover in process.processes_running(POSTGRES, data_dir / "postgres"):
        leftover.kill()


def accepts_connections(pg: EmbeddedPostgres) -> bool:
    try:
        with psycopg.connect(pg.dsn(), connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def postmasters(pg: EmbeddedPostgres) -> list[psutil.Process]:
    running = process.processes_running(POSTGRES, pg.pgdata)
    pids = {p.pid for p in running}
    return [p for p in running if p.ppid() not in pids]


def postmaster_pid(pg: EmbeddedPostgres) -> int:
    return int((pg.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def write_note(pg: EmbeddedPostgres, text: str) -> None:
    with psycopg.connect(pg.dsn()) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS note (text text)")
        connection.execute("INSERT INTO note VALUES (%s)", [text])


def notes(pg: EmbeddedPostgres) -> list[str]:
    with psycopg.connect(pg.dsn()) as connection:
        return [row[0] for row in connection.execute("SELECT text FROM note ORDER BY text")]


def test_start_serves_the_socket_and_stop_removes_the_server(data_dir: Path) -> None:
    parent_mode = data_dir.parent.stat().st_mode
    pg = EmbeddedPostgres(data_dir)
    pg.start()
    try:
        write_note(pg, "hello")
        assert notes(pg) == ["hello"]
        pid = postmaster_pid(pg)
        if RUNNING_AS_ROOT:
            assert psutil.Process(pid).username() == "skeldir"
        assert stat.S_IMODE(pg.socket_dir.stat().st_mode) == 0o700
    finally:
        pg.stop()
    pg.stop()

    assert is_gone(pid)
    assert not (pg.socket_dir / ".s.PGSQL.5432").exists()
    assert data_dir.parent.stat().st_mode == parent_mode


def test_restart_keeps_the_data(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        write_note(pg, "kept")
    with EmbeddedPostgres(data_dir) as pg:
        assert notes(pg) == ["kept"]


def test_asyncpg_accepts_the_dsn(data_dir: Path) -> None:
    async def current_user(dsn: str) -> str:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetchval("SELECT current_user")
        finally:
            await connection.close()

    with EmbeddedPostgres(data_dir) as pg:
        assert asyncio.run(current_user(pg.dsn())) == "postgres"


def test_dsn_names_the_socket_directory_even_with_odd_characters() -> None:
    pg = EmbeddedPostgres(Path("/srv/a b?c&d"))
    assert conninfo_to_dict(pg.dsn("api", "skeldir")) == {
        "user": "api",
        "dbname": "skeldir",
        "host": "/srv/a b?c&d/run",
    }


def test_deep_data_dir_gets_a_short_socket_dir(workspace: Path) -> None:
    pg = EmbeddedPostgres(workspace / ("d" * 100))
    assert pg.socket_dir.parent == Path("/tmp")
    try:
        with pg:
            write_note(pg, "deep")
            assert stat.S_IMODE(pg.socket_dir.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(pg.socket_dir, ignore_errors=True)


def test_server_stops_when_its_supervisor_is_killed(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir)
    supervisor = start_supervisor(EmbeddedPostgres, data_dir)
    try:
        poll_until(
            lambda: supervisor.poll() is not None or accepts_connections(pg),
            30,
            lambda: process.log_tail(pg.log_path),
        )
        assert supervisor.poll() is None, supervisor.communicate()[1].decode()
        write_note(pg, "before the kill")
        old_pid = postmaster_pid(pg)
    finally:
        supervisor.kill()
        supervisor.wait(10)

    poll_until(lambda: is_gone(old_pid), 15, lambda: process.log_tail(pg.log_path))
    with pg:
        assert notes(pg) == ["before the kill"]
        assert [p.pid for p in postmasters(pg)] == [postmaster_pid(pg)]


def test_start_takes_over_a_server_left_running(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        write_note(pg, "before the takeover")
    user = service_user()
    leftover = subprocess.Popen(
        [POSTGRES, "-D", pg.pgdata],
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=None if user is None else user.pw_uid,
        group=None if user is None else user.pw_gid,
        extra_groups=None if user is None else [],
    )
    try:
        poll_until(lambda: accepts_connections(pg), 30, lambda: f"leftover exit {leftover.poll()}")
        with pg:
            assert leftover.poll() is not None
            assert notes(pg) == ["before the takeover"]
            assert [p.pid for p in postmasters(pg)] == [postmaster_pid(pg)]
    finally:
        leftover.kill()
        leftover.wait(10)


def test_start_ignores_a_lock_file_naming_a_recycled_pid(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        write_note(pg, "before the reboot")
    user = service_user()
    unrelated = subprocess.Popen(
        ["sleep", "60"],
        user=None if user is None else user.pw_uid,
        group=None if user is None else user.pw_gid,
        extra_groups=None if user is None else [],
    )
    try:
        (pg.pgdata / "postmaster.pid").write_text(f"{unrelated.pid}\n{pg.pgdata}\n")
        with pg:
            assert notes(pg) == ["before the reboot"]
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait(10)


@pytest.mark.skipif(not RUNNING_AS_ROOT, reason="only root switches to the service user")
def test_data_dir_the_service_user_cannot_reach_is_refused_untouched(tmp_path: Path) -> None:
    modes_before = [p.stat().st_mode for p in (tmp_path, *tmp_path.parents)]
    with pytest.raises(UnreachablePathError, match="cannot traverse .* data directory"):
        EmbeddedPostgres(tmp_path / "data").start()
    assert [p.stat().st_mode for p in (tmp_path, *tmp_path.parents)] == modes_before
    assert not (tmp_path / "data").exists()
