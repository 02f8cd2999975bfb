"""A cap on a request's line and headers, enforced while they arrive.

uvicorn's httptools protocol has no such cap: the parser appends each piece of a header to what
came before, so one request with a header of many megabytes holds the event loop (and every other
request) for seconds. This protocol counts the bytes of a head that is still incomplete after each
read and answers 431 as soon as they pass the cap, without parsing further.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from skeldir.base.http.problems import PROBLEM_MEDIA_TYPE
from skeldir.base.observability import metrics


def capped_http_protocol(max_header_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the request line and headers capped at
    `max_header_bytes` (give the class as `http=` to uvicorn)."""

    class HeaderCappedProtocol(_HeaderCappedProtocol):
        cap = max_header_bytes

    return HeaderCappedProtocol


class _HeaderCappedProtocol(HttpToolsProtocol):
    cap: int

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # Counted whole: the read that began the head may hold a pipelined request's tail too,
        # which errs on the safe side. Reads are bounded, so the head never passes the cap by
        # more than one read.
        self._head_bytes += len(data)
        if self._head_bytes > self.cap:
            self._refuse()

    def _refuse(self) -> None:
        metrics.HEADERS_TOO_LARGE.inc()
        body = orjson.dumps({
            "type": "about:blank",
            "title": "Request header fields too large",
            "status": 431,
            "detail": f"the request line and headers are limited to {self.cap} bytes",
        })
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self._in_head = False
        self.transport.close()
