"""Carry out one recorded privacy request, once: the worker's task calls this with ids only.

The request row is locked for the run, and a completed request is left alone, so a task
delivered twice (or a sweep racing the task) does the work once. The work and the completion
commit together.
"""

from __future__ import annotations

import uuid

import asyncpg

from skeldir.base.crypto import SecretBox
from skeldir.base.db import tenant_transaction
from skeldir.domains.ingestion.touchpoints import tenant_stitch_key
from skeldir.domains.privacy import requests
from skeldir.domains.privacy.data_export import held_data
from skeldir.domains.privacy.erasure import erase


async def process_request(
    pool: asyncpg.Pool, box: SecretBox, tenant_id: uuid.UUID, request_id: uuid.UUID
) -> dict | None:
    """The request's counts, or None when it was already completed (or does not exist)."""
    async with tenant_transaction(pool, tenant_id) as conn:
        request = await requests.get(conn, tenant_id, request_id, lock=True)
        if request is None or request.completed_at is not None:
            return None
        if request.kind == "data_request":
            held = await held_data(conn, tenant_id, request.subject)
            counts = {"orders": len(held["orders"]), "touchpoints": len(held["touchpoints"])}
            await requests.complete(conn, tenant_id, request_id, counts, keep_subject=True)
            return counts
        tenant_key = await tenant_stitch_key(conn, box, tenant_id)
        erased = await erase(conn, tenant_id, request.subject, tenant_key=tenant_key, box=box)
        counts = erased.document()
        await requests.complete(conn, tenant_id, request_id, counts, keep_subject=False)
        return counts
