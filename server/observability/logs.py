"""Structured JSON log lines.

Only fields we put there on purpose reach a line: the message, the logger, the level and an
allow-list of ``extra`` keys. Exception text is never formatted, because a driver's message
(an IntegrityError's DETAIL, say) can quote a stored value. A message's ``%`` arguments are not
filled in either, except for the server's own start and stop lines (a process id, an address
and a port), which an operator needs and which cannot carry anyone's data.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

ALLOWED_EXTRA_FIELDS = frozenset(
    {
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "operation",
        "role",
        "outcome",
        "error_type",
        "where",
        "command",
        "rows",
        "checked",
        "count",
        "revision",
        "counts",
    }
)


# (logger, message template) whose arguments are filled in: uvicorn's lifecycle lines only.
FORMATTED_TEMPLATES = frozenset(
    ("uvicorn.error", template)
    for template in (
        "Started server process [%d]",
        "Finished server process [%d]",
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "Uvicorn running on %s://[%s]:%d (Press CTRL+C to quit)",
    )
)


def _message(record: logging.LogRecord) -> str:
    if not isinstance(record.msg, str):
        return type(record.msg).__name__
    if record.args and (record.name, record.msg) in FORMATTED_TEMPLATES:
        try:
            return record.msg % record.args
        except (TypeError, ValueError):
            return record.msg
    return record.msg


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        for key in ALLOWED_EXTRA_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error_type"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"), default=str)


def failure_fields(error: BaseException | None) -> dict[str, str]:
    """``extra`` fields for a record about ``error``: its type and where it was raised, never its text.

    Pass these instead of ``exc_info``: this module's formatter drops exception text, but a process
    that never configured logging (a CLI command) prints a record through Python's last-resort
    handler, traceback and message in full, and a driver's message can quote a stored value.
    """
    frames = traceback.extract_tb(error.__traceback__) if error is not None else []
    where = " <- ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" for frame in reversed(frames[-6:]))
    return {"error_type": type(error).__name__, "where": where}


def configure_logging(level: str) -> None:
    """One handler on the root logger; uvicorn's access log is replaced by our request line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Strawberry logs every GraphQL error with its text; ours are shaped and logged in schema.errors.
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)
