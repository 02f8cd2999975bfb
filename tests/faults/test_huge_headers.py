"""A request whose line or headers pass the cap gets 431 while they are still arriving, and
the API goes on serving everyone else meanwhile; a head under the cap is served as always."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from skeldir.base.config import Settings

pytestmark = pytest.mark.faults

CAP = Settings().max_header_bytes
PIECE = 64 * 1024


def send_head(port: int, head_pieces) -> bytes:
    """Send the head piece by piece (stopping if the server closes), then read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            for piece in head_pieces:
                conn.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b"431" not in answer.split(b"\r\n")[0]:
                    break
        except ConnectionResetError:
            pass
        return answer


def huge_header(total: int):
    yield b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: "
    for _ in range(total // PIECE):
        yield b"a" * PIECE
    yield b"\r\n\r\n"


def test_a_huge_header_is_refused_with_431_and_stalls_no_one(system):
    started = time.monotonic()
    answer = send_head(system.port, huge_header(32 * 1024 * 1024))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"application/problem+json" in answer
    assert time.monotonic() - started < 5, "refused while the header arrived, not after"
    with httpx.Client(base_url=system.api_url, timeout=5) as client:
        assert client.get("/healthz").status_code == 200


def test_a_huge_request_line_is_refused_with_431(system):
    def long_url():
        yield b"GET /healthz?" + b"q" * (CAP + PIECE) + b" HTTP/1.1\r\n"
        yield b"Host: 127.0.0.1\r\n\r\n"

    assert send_head(system.port, long_url()).startswith(b"HTTP/1.1 431 ")


def test_a_head_under_the_cap_is_served(system):
    padding = "a" * (CAP - 2048)
    with httpx.Client(base_url=system.api_url, timeout=5) as client:
        assert client.get("/healthz", headers={"X-Padding": padding}).status_code == 200
