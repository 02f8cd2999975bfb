"""Writing the spend ledger: a batch upserted in one tenant transaction.

Rows go in as one array per column through `unnest`, a statement per chunk, so a load costs a
few round trips however many rows it holds. A key loaded again replaces its figures and names
(platforms restate recent days); within one batch the last row of a key wins, as if the rows had
been loaded one after another.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

from skeldir.base.db import tenant_transaction
from skeldir.domains.spend.rows import SpendRow

# Rows per statement: large enough that round trips do not matter, small enough to keep each
# statement's parameters modest.
CHUNK = 10_000

_UPSERT_SQL = """
INSERT INTO ad_spend AS s (tenant_id, day, platform, account_id, campaign_id, adset_id, ad_id,
    campaign_name, adset_name, ad_name, currency, spend_minor, impressions, clicks, loaded_at)
SELECT $1, r.* , now()
FROM unnest($2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[])
     AS r(day, platform, account_id, campaign_id, adset_id, ad_id, campaign_name, adset_name,
          ad_name, currency, spend_minor, impressions, clicks)
ON CONFLICT (tenant_id, day, platform, account_id, campaign_id, adset_id, ad_id) DO UPDATE SET
    campaign_name = EXCLUDED.campaign_name, adset_name = EXCLUDED.adset_name,
    ad_name = EXCLUDED.ad_name, currency = EXCLUDED.currency,
    spend_minor = EXCLUDED.spend_minor, impressions = EXCLUDED.impressions,
    clicks = EXCLUDED.clicks, loaded_at = EXCLUDED.loaded_at
"""


def last_of_each_key(rows: Iterable[SpendRow]) -> list[SpendRow]:
    """One row per key, the last given (an upsert may not touch a row twice in a statement)."""
    return list({row.key: row for row in rows}.values())


async def upsert(conn: asyncpg.Connection, tenant_id: uuid.UUID, rows: list[SpendRow]) -> int:
    """Upsert `rows` on a connection already in the tenant's transaction; the rows written."""
    unique = last_of_each_key(rows)
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start:start + CHUNK]
        await conn.execute(
            _UPSERT_SQL, tenant_id,
            [r.day for r in chunk], [r.platform for r in chunk], [r.account_id for r in chunk],
            [r.campaign_id for r in chunk], [r.adset_id for r in chunk], [r.ad_id for r in chunk],
            [r.campaign_name for r in chunk], [r.adset_name for r in chunk],
            [r.ad_name for r in chunk], [r.currency for r in chunk],
            [r.spend_minor for r in chunk], [r.impressions for r in chunk],
            [r.clicks for r in chunk],
        )
    return len(unique)


async def store(pool: asyncpg.Pool, tenant_id: uuid.UUID, rows: list[SpendRow]) -> int:
    """Upsert `rows` for one tenant, all or nothing; the number of distinct keys written."""
    async with tenant_transaction(pool, tenant_id) as conn:
        return await upsert(conn, tenant_id, rows)
