"""How every process writes its log records: a readable line, or one JSON object per line.

Both formats name the process ("api-0", "aggregator", "master") and the id of
the HTTP request a record was logged for: RequestIdFilter copies it onto the
record from `current_request_id`, which the web layer sets while it handles
each request. Under the cluster the master copies workers' stderr lines into
their log files verbatim, so a JSON line arrives there intact.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

# Set by boltlink.web.request_log around each request; asyncio copies it into every task the request starts.
current_request_id: ContextVar[str | None] = ContextVar("boltlink_request_id", default=None)

TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S%z"

# Attributes every LogRecord has; anything else on a record came from `extra=` and becomes a JSON field.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "request_tag"}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being handled when it was logged (None outside requests).

    A handler filter runs as the record is emitted, in the request's context, so
    the id stays right even if the record is formatted later (queue handlers, caplog).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:  # extra={"request_id": ...} wins
            record.request_id = current_request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """`2026-01-02T03:04:05+0000 INFO api-0[123] boltlink.web [req-id]: message`."""

    def __init__(self, process_name: str) -> None:
        # The name goes into the format itself: multiprocessing's name is not set in the master.
        process = process_name.replace("%", "%%")
        super().__init__(f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s%(request_tag)s: %(message)s",
                         datefmt=TEXT_DATEFMT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        request_id = getattr(record, "request_id", None)
        record.request_tag = f" [{request_id}]" if request_id else ""
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record and per line: newlines in messages and tracebacks are escaped by json."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        # time first, as in the text format: readers and tools look for it at the start of the line.
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process_name,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            document["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in document:
                document[key] = value
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exc_info"] = record.exc_text
        if record.stack_info:
            document["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str)


def make_formatter(log_format: str, process_name: str) -> logging.Formatter:
    return JsonFormatter(process_name) if log_format == "json" else TextFormatter(process_name)

