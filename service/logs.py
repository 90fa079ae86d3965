"""Structured JSON log lines. Only whitelisted fields are written: never a token, a JWT or a
patient identifier, whatever a caller passes in ``extra``."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

SAFE_FIELDS = (
    "service",
    "hook",
    "hookInstance",
    "outcome",
    "pathway",
    "cards",
    "status",
    "timings_ms",
    "prefetched",
    "fetched",
    "fhir_requests",
    "request_id",
    "reason",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in SAFE_FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__  # the type only, never the message
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str) -> None:
    """One JSON handler on the 'iport_cds' logger (idempotent: safe for many create_app calls)."""
    logger = logging.getLogger("iport_cds")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_iport_cds", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._iport_cds = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
