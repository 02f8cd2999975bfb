"""A PostgreSQL primary and its streaming replica (hot standby), both from the embedded binaries,
for tests of reads sent to a replica."""

from __future__ import annotations

import pwd
import shutil
import time
from pathlib import Path

from skeldir.embedded import process
from skeldir.embedded.postgres import BIN_DIR, EmbeddedPostgres


class EmbeddedStandby(EmbeddedPostgres):
    """A cluster made by `pg_basebackup` from `primary` that streams and replays its WAL."""

    def __init__(self, data_dir: Path, primary: EmbeddedPostgres) -> None:
        super().__init__(data_dir)
        self.primary = primary

    def _prepare_work_dir(self, user: pwd.struct_passwd | None, deadline: float) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            staging = self.data_dir / "postgres.basebackup"
            shutil.rmtree(staging, ignore_errors=True)
            # -R writes standby.signal and the primary's conninfo; -X stream copies the WAL
            # written during the backup, so the standby starts consistent.
            process.run(
                [BIN_DIR / "pg_basebackup", "-D", staging, "-R", "-X", "stream",
                 "-d", self.primary.dsn(), "--checkpoint=fast"],
                self.log_path,
                user=user,
                cwd=self.data_dir,
                timeout=max(1.0, deadline - time.monotonic()),
            )
            staging.rename(self.pgdata)
        super()._prepare_work_dir(user, deadline)
