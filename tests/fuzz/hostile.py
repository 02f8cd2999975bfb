"""Hostile inputs for the fuzz suite: strings, numbers, JSON documents and headers that senders
(or attackers) can put where a parser expects something sane.

Example counts are modest so the suite stays fast; SKELDIR_FUZZ_SCALE multiplies every one of
them (e.g. `SKELDIR_FUZZ_SCALE=50 .venv/bin/pytest tests/fuzz` for a longer hunt).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("SKELDIR_FUZZ_SCALE", "1"))
# A parse of a body up to the webhook cap (1 MiB) takes milliseconds; seconds means a blow-up.
MAX_SECONDS_PER_CALL = 2.0


def fuzz_settings(examples: int) -> settings:
    """`examples` runs (times SKELDIR_FUZZ_SCALE). Time is bounded by `bounded_time`, not by
    Hypothesis's deadline: on a shared machine a deadline flakes, a 2 s bound does not."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


def bounded_time(call: Callable[[], Any]) -> Any:
    """`call()`, asserting it returned (or raised) within MAX_SECONDS_PER_CALL."""
    started = time.perf_counter()
    try:
        return call()
    finally:
        elapsed = time.perf_counter() - started
        assert elapsed < MAX_SECONDS_PER_CALL, f"took {elapsed:.2f}s"


# --- text -----------------------------------------------------------------------------------

SQL = "'; DROP TABLE orders; --"
SCRIPT = "<script>alert(document.cookie)</script>"
HOSTILE_TEXT = (
    "",
    " ",
    SQL,
    "1' OR '1'='1",
    "Robert'); DROP TABLE webhook_events;--",
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "\x00",
    "a\x00b",
    "\r\nX-Injected: 1",
    "line\nbreak",
    "\t",
    "%00",
    "%s%n%x{0}{!r}",
    "../../../../etc/passwd",
    "\u202egnp.exe",
    "\ufeff",
    "\u0301\u0301\u0301",
    "😀" * 10,
    "Ω≈ç√∫",
    "=cmd|' /C calc'!A0",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "99999999999999999999999.99",
    "-0.01",
    "0x10",
    "1_000",
    "１２３",
    "usd",
    "XXX",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-02-30T00:00:00Z",
    "2026-01-25T12:34:56",
    "2026-01-25T25:00:00Z",
    "https://user:pass@evil.example:99999/p?utm_source=%00&gclid=<script>",
    "http://[::1",
    "//evil.example",
    "https://\uff03evil.example/",
)

# Long strings are built from a length rather than drawn character by character: fast, and
# they reach sizes (200,000 characters) that random text never does.
long_text = st.builds(
    lambda piece, count: (piece * count)[:200_000],
    st.sampled_from(["A", "9", "é", "\x00", SCRIPT, "%41", "&amp;", " "]),
    st.integers(min_value=1_000, max_value=200_000),
)
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    long_text,
)


# --- numbers --------------------------------------------------------------------------------

HOSTILE_NUMBERS = (
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    10**30,
    -(10**30),
    0.1,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    123.456789,
)
hostile_numbers = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@dataclass(frozen=True)
class Raw:
    """JSON text written as is into a document: tokens Python's json cannot produce."""

    text: str


RAW_TOKENS = (
    "1e400",
    "-1e400",
    "1E-400",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "0.000000000000000000000000000001",
    "99999999999999999999999.99",
    "1" + "0" * 400,
    "9" * 5000,
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    '"a\\u0000b"',
    "[" * 10_000 + "]" * 10_000,
    '{"a":' * 10_000 + "1" + "}" * 10_000,
    "[" * 1_000 + "]" * 1_000,
    '{"a":' * 900 + "{}" + "}" * 900,
    "[" + ",".join(["{}"] * 5_000) + "]",
)
raw_tokens = st.sampled_from(RAW_TOKENS).map(Raw)


# --- JSON -----------------------------------------------------------------------------------

# Raw tokens make most bodies invalid JSON, so they are drawn less often than the rest.
hostile_scalars = st.one_of(
    st.none(), st.booleans(), hostile_numbers, hostile_numbers, hostile_text, hostile_text,
    raw_tokens,
)
hostile_keys = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=12))
# Arbitrary JSON, hostile at every leaf.
hostile_json = st.recursive(
    hostile_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(hostile_keys, children, max_size=6),
    ),
    max_leaves=25,
)


def encode(value: Any) -> str:
    """JSON text of `value`, with Raw tokens as written, NaN and Infinity as bare words, and
    text as itself rather than as ASCII escapes (so bodies carry raw multi-byte UTF-8)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(item) for item in value) + "]"
    return _dumps(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def paths(document: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a value in `document` (the root's is ())."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, (*prefix, index))


_DELETE = object()


def _edited(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(document, dict) and head in document:
        copy = dict(document)
        if value is _DELETE and not rest:
            del copy[head]
        else:
            copy[head] = _edited(copy[head], rest, value)
        return copy
    if isinstance(document, list) and isinstance(head, int) and head < len(document):
        copy = list(document)
        if value is _DELETE and not rest:
            del copy[head]
        else:
            copy[head] = _edited(copy[head], rest, value)
        return copy
    return document


def mutated(document: Any) -> st.SearchStrategy[Any]:
    """`document` with a few of its values replaced by hostile ones or deleted (maybe none)."""
    where = st.sampled_from([path for path in paths(document) if path])
    replacement = st.one_of(hostile_json, st.just(_DELETE))
    edits = st.lists(st.tuples(where, replacement), max_size=4)

    def run(changes: list[tuple[tuple, Any]]) -> Any:
        current = document
        for path, value in changes:
            current = _edited(current, path, value)
        return current

    return edits.map(run)


INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\x80")


@st.composite
def corrupted(draw: st.DrawFn, text: str) -> bytes:
    """`text` as UTF-8, sometimes with invalid UTF-8 spliced in or cut short."""
    body = text.encode("utf-8", "surrogatepass")
    how = draw(st.sampled_from(["as is"] * 6 + ["splice", "truncate"]))
    if how == "splice" and body:
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.sampled_from(INVALID_UTF8)) + body[at:]
    if how == "truncate" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    return body


def bodies_like(documents: list[Any]) -> st.SearchStrategy[bytes]:
    """Request bodies shaped like `documents` with hostile values, plus arbitrary ones."""
    shaped = st.sampled_from(documents).flatmap(mutated).map(encode)
    return st.one_of(
        shaped.flatmap(corrupted),
        shaped.flatmap(corrupted),
        shaped.flatmap(corrupted),
        hostile_json.map(encode).flatmap(corrupted),
        st.binary(max_size=200),
    )


# --- headers --------------------------------------------------------------------------------

header_values = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=80),
    # What an HTTP server hands over for non-ASCII header bytes.
    st.binary(max_size=80).map(lambda raw: raw.decode("latin-1")),
    st.integers(min_value=0, max_value=2**70).map(str),
    long_text,
)


def headers_like(known: dict[str, str], names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """`known` headers with some values replaced, removed or added under one of `names`."""
    return st.tuples(
        st.dictionaries(st.sampled_from(names), header_values, max_size=len(names)),
        st.lists(st.sampled_from(names), max_size=2),
    ).map(lambda change: {
        name: value
        for name, value in {**known, **change[0]}.items()
        if name not in change[1]
    })


# --- what may be stored ---------------------------------------------------------------------


def assert_storable(value: Any, where: str = "value") -> None:
    """`value` is what PostgreSQL can keep: JSON that orjson writes, with no NUL in any text
    (neither text nor jsonb can hold U+0000)."""
    orjson.dumps(value)
    _assert_no_nul(value, where)


def _assert_no_nul(value: Any, where: str) -> None:
    if isinstance(value, str):
        assert "\x00" not in value, f"{where} holds a NUL character"
    elif isinstance(value, dict):
        for key, item in value.items():
            _assert_no_nul(key, f"{where} key")
            _assert_no_nul(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _assert_no_nul(item, f"{where}[{index}]")
