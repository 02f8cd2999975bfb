"""JSON log lines on stderr; every `extra=` field reaches the output.

One line is one JSON object: ts, level, logger, message, component, then exc_info and
stack_info when present, then every `extra=` field. The API logs one line per accepted webhook
(`event_ingested`), so rendering is on the hot path: the object is built from the record
directly and rendered by orjson (python-json-logger's formatter cost several times as much per
line). Values orjson does not know are rendered as python-json-logger renders them (bytes as
base64, anything else by str()).
"""

from __future__ import annotations

import json
import logging
import sys
import time

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder

# Attributes every LogRecord has; the others are `extra=` fields. taskName is Python 3.12's.
_RESERVED = frozenset(RESERVED_ATTRS) | {"taskName"}
_OPTIONS = orjson.OPT_NON_STR_KEYS
_fallback = JsonEncoder()


class JsonLines(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        """Local time as logging's default asctime ("2026-12-07 16:11:25,426"), the text of the
        second kept from one line to the next."""
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "component": self.component,
        }
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            line["exc_info"] = record.exc_text
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                line[key] = value
        try:
            return orjson.dumps(line, default=_fallback.default, option=_OPTIONS).decode()
        except (orjson.JSONEncodeError, TypeError):
            # What orjson refuses (integers beyond 64 bits, say): the standard encoder.
            return json.dumps(line, cls=JsonEncoder)


def configure_logging(level: str = "INFO", *, component: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(component))
    # The line carries none of the caller's file, line, thread or process: logging need not
    # look them up for each record (the optimisations of the logging HOWTO).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs would repeat every request; metrics count them instead.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
