"""The `skeldir` command: thin adapters over the launcher, migrations and operator actions.

Each module below adds its commands to the one group, `main`, defined in `root`.
"""

from skeldir.cli import demo  # noqa: F401
from skeldir.cli import doctor  # noqa: F401
from skeldir.cli import keys  # noqa: F401
from skeldir.cli import learn  # noqa: F401
from skeldir.cli import operations  # noqa: F401
from skeldir.cli.root import main

__all__ = ["main"]
