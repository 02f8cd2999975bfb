"""Names for a test's own database and roles (the server may be shared with other work)."""

from __future__ import annotations

import uuid

from skeldir.deployment.provision import Roles


def new_roles() -> Roles:
    suffix = uuid.uuid4().hex[:10]
    return Roles(database=f"skt_{suffix}", owner=f"skt_{suffix}_owner",
                 runtime=f"skt_{suffix}_app", worker=f"skt_{suffix}_worker")
