"""PostgreSQL's binary COPY format as NumPy structured arrays.

Rows whose fields all have a fixed width (integers, booleans, timestamps, fixed-size byte
strings) have one fixed size, so a whole COPY stream is one `np.frombuffer` away from arrays,
and arrays are one `tobytes` away from a stream: no Python object per row either way.
Every field must be non-NULL (NULL has no width).
"""

from __future__ import annotations

import struct

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)

# PostgreSQL type -> NumPy field type (binary COPY is big-endian). A timestamptz counts
# microseconds since 2000-01-01 UTC.
FIELD_TYPES = {
    "int2": ">i2",
    "int4": ">i4",
    "int8": ">i8",
    "bool": "?",
    "timestamptz": ">i8",
}


def row_type(fields: list[tuple[str, str | np.dtype]]) -> np.dtype:
    """The structured dtype of one row: a field count, then each field's length and value."""
    layout: list[tuple] = [("field_count", ">i2")]
    for name, kind in fields:
        layout.append((f"{name}_length", ">i4"))
        layout.append((name, FIELD_TYPES.get(kind, kind) if isinstance(kind, str) else kind))
    return np.dtype(layout)


def read(stream: bytes | memoryview, dtype: np.dtype) -> np.ndarray:
    """The rows of a binary COPY stream of fixed-width rows."""
    if bytes(stream[: len(SIGNATURE)]) != SIGNATURE:
        raise ValueError("not a binary COPY stream")
    extension = struct.unpack(">i", stream[15:19])[0]
    body = memoryview(stream)[19 + extension : len(stream) - len(TRAILER)]
    return np.frombuffer(body, dtype=dtype)


def rows(dtype: np.dtype, count: int) -> np.ndarray:
    """`count` empty rows with their field count and field lengths filled in."""
    array = np.zeros(count, dtype=dtype)
    names = [name for name in dtype.names if name != "field_count"]
    array["field_count"] = len(names) // 2
    for name in names[1::2]:
        array[f"{name}_length"] = dtype.fields[name][0].itemsize
    return array
