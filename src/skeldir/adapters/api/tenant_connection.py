"""The reader's tenant transaction as a typed dependency, for routes that need one for their body.

It is for reads only: it may run on the read replica.

Routes that manage their own transactions (exports, streams, operations) open them themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from skeldir.adapters.api.auth import Principal, require_reader


async def reader_transaction(
    request: Request, principal: Principal = Depends(require_reader)
) -> AsyncIterator[asyncpg.Connection]:
    # Reads only: on the read replica while it keeps up (base/read_replica.py).
    async with request.app.state.reads.tenant_transaction(principal.tenant_id) as conn:
        yield conn


# Scope "function": the transaction ends when the route returns, before the response is sent,
# so no connection waits on a slow client. Declare it after the route's other parameters: the
# key and the parameters are checked before a connection is taken.
TenantConnection = Annotated[asyncpg.Connection, Depends(reader_transaction, scope="function")]
