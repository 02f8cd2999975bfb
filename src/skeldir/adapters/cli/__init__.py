"""The `skeldir` command: thin adapters over the launcher, migrations and operator actions.

Each module below adds its commands to the one group, `main`, defined in `root`.
"""

from skeldir.adapters.cli import api_keys  # noqa: F401
from skeldir.adapters.cli import channel_rules  # noqa: F401
from skeldir.adapters.cli import connectors  # noqa: F401
from skeldir.adapters.cli import demo  # noqa: F401
from skeldir.adapters.cli import doctor  # noqa: F401
from skeldir.adapters.cli import exchange_rates  # noqa: F401
from skeldir.adapters.cli import learn  # noqa: F401
from skeldir.adapters.cli import operations  # noqa: F401
from skeldir.adapters.cli import privacy  # noqa: F401
from skeldir.adapters.cli import recompute  # noqa: F401
from skeldir.adapters.cli import services  # noqa: F401
from skeldir.adapters.cli import spend  # noqa: F401
from skeldir.adapters.cli import tenants  # noqa: F401
from skeldir.adapters.cli.root import main

__all__ = ["main"]
