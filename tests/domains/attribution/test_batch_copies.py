"""The batch's COPY queries carry their arguments inlined as literals (COPY takes no
parameters); on real PostgreSQL, any text survives the inlining as it was."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skeldir.base import binary_copy
from skeldir.domains.attribution import batch_arrays

pytestmark = pytest.mark.anyio

_ROW = binary_copy.row_type(
    [("ordinal", "int4"), ("length", "int4"), ("first", "int4"), ("last", "int4")]
)
_QUERY = """
SELECT u.ordinal::int4, length(u.name)::int4, ascii(u.name)::int4,
       ascii(reverse(u.name))::int4
FROM unnest($2::text[]) WITH ORDINALITY AS u(name, ordinal)
WHERE EXISTS (SELECT 1 WHERE $1 = '00000000-0000-0000-0000-00000000002a'::uuid)
ORDER BY 1
"""
TENANT = uuid.UUID(int=42)

# PostgreSQL text holds any character but NUL.
names = st.lists(st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=8),
                 max_size=6)


def rows_of(copied) -> list[tuple[int, int, int, int]]:
    return list(zip(*(copied[name].tolist() for name in ("ordinal", "length", "first", "last"))))


def described(values: list[str]) -> list[tuple[int, int, int, int]]:
    return [(n, len(v), ord(v[0]) if v else 0, ord(v[-1]) if v else 0)
            for n, v in enumerate(values, start=1)]


async def test_quotes_dollars_and_backslashes_survive_inlining(runtime_pool):
    tricky = ["it's", "''", "$1", "$2 and $10", "back\\slash", "\x1f", "", "ünï", "'; --"]
    async with runtime_pool.acquire() as conn:
        rows = await batch_arrays._copy_out(conn, _QUERY, _ROW, TENANT, tricky)
    assert rows_of(rows) == described(tricky)


@settings(max_examples=25, deadline=None)
@given(values=names)
def test_any_text_comes_back_as_sent(values, database):
    import asyncio

    import asyncpg

    async def round_trip():
        conn = await asyncpg.connect(database.database_url)
        try:
            return await batch_arrays._copy_out(conn, _QUERY, _ROW, TENANT, values)
        finally:
            await conn.close()

    rows = asyncio.run(round_trip())
    assert rows_of(rows) == described(values)
