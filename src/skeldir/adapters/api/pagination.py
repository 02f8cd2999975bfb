"""Cursor pagination: a page ends with an opaque cursor naming its last row's sort key.

Keyset pages stay fast at any depth and stable while rows are added. The cursor is the sort
key as JSON, base64url-encoded; it is not secret (it only holds values the client has seen),
but the client must treat it as opaque: a cursor that does not decode is a 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import orjson
# Starlette's, which FastAPI's subclasses and the app's problem+json handler answers: the CLI
# decodes these cursors too, and so does not import FastAPI (about 6 MiB) for them.
from starlette.exceptions import HTTPException

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_LENGTH = 1000


def encode_cursor(sort_key: Sequence[object]) -> str:
    """`sort_key` holds JSON values (str, int, None): convert dates and uuids to str first."""
    return base64.urlsafe_b64encode(orjson.dumps(list(sort_key))).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list | None:
    """The sort key a cursor names, with `arity` values; None for the first page."""
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise HTTPException(400, "the cursor is not one this API returned") from None
    if not isinstance(values, list) or len(values) != arity:
        raise HTTPException(400, "the cursor is not one this API returned")
    return values


def page(rows: list, limit: int, sort_key) -> tuple[list, str | None]:
    """Split `limit + 1` fetched rows into the page and the cursor of the next one (None at the
    end). `sort_key(row)` gives the row's sort key as JSON values."""
    if len(rows) <= limit:
        return rows, None
    kept = rows[:limit]
    return kept, encode_cursor(sort_key(kept[-1]))
