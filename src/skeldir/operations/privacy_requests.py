"""Take a privacy request from any door (the admin API, the CLI, a Shopify compliance webhook):
hash what names the person with the tenant's stitch key, record the request, and leave the work
to the worker (`domains.privacy.processing`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

from skeldir.base.crypto import SecretBox
from skeldir.base.db import tenant_transaction
from skeldir.domains.ingestion.touchpoints import tenant_stitch_key
from skeldir.domains.privacy import requests
from skeldir.domains.privacy.subjects import OrderRef, subject_of


async def submit(
    pool: asyncpg.Pool,
    box: SecretBox,
    tenant_id: uuid.UUID,
    *,
    kind: str,
    origin: str,
    customer_refs: Iterable[str] = (),
    visitor_ids: Iterable[str] = (),
    orders: Iterable[OrderRef] = (),
    source_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> tuple[uuid.UUID, bool]:
    """(request id, True when new). Raises SubjectError for a request that names nobody."""
    async with tenant_transaction(pool, tenant_id) as conn:
        tenant_key = await tenant_stitch_key(conn, box, tenant_id)
        subject = subject_of(
            tenant_key,
            customer_refs=customer_refs,
            visitor_ids=visitor_ids,
            orders=orders,
            source_id=str(source_id) if kind == "shop_redact" and source_id else None,
        )
        return await requests.record(
            conn,
            tenant_id,
            kind=kind,
            origin=origin,
            subject=subject,
            dedupe_key=dedupe_key,
            source_id=source_id,
        )
