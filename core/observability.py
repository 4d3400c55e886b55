"""Logging with context: every record carries the request id, job id and tenant in effect.

The API middleware sets ``request_id`` (and authentication sets ``tenant``) for the duration of a
request; the worker sets ``job_id`` and ``tenant`` around each task step. In JSON format each
record is one object per line, with those fields and whatever the call passed in ``extra=``.

Every logged value is escaped: a request path, a file name or an exception message holding CR,
LF, ESC or NUL can neither forge a line nor reach a terminal raw (issue #23: ``GET /nope%0aFAKE``
wrote a forged line). Text format writes control characters as ``\n``, ``\x1b``...; a
traceback's lines are prefixed ``  | `` so none can pass for a record. JSON escapes them as
JSON does, and also C1 controls and U+2028/2029, which JSON leaves raw.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from core.settings import ObservabilitySettings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
tenant: ContextVar[str | None] = ContextVar("tenant", default=None)

_CONTEXT = {"request_id": request_id, "job_id": job_id, "tenant": tenant}
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Set context fields (``job_id=``, ``tenant=``...) for the block, then restore them."""
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the context fields onto each record (``%(request_id)s`` works in text formats)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


# What could forge, hide or colour a line: C0 controls (CR, LF, ESC, NUL...), DEL, C1 controls,
# the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Those JSON writes raw (it escapes C0 itself).
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(value: str) -> str:
    """``value`` on one line, every control character written as an escape (``\\n``,
    ``\\x1b``, ``\\x00``, ``\\u2028``)."""
    return _UNSAFE.sub(_escape_one, value)


def _traceback(text: str) -> str:
    """A traceback's lines, each escaped and prefixed so that none can pass for a record."""
    return "\n".join(f"  | {escape(line)}" for line in text.splitlines())


class TextFormatter(logging.Formatter):
    """The text format with every value escaped: one record, one line (plus its traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{_traceback(record.exc_text)}"
        if record.stack_info:
            line = f"{line}\n{_traceback(self.formatStack(record.stack_info))}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        text = json.dumps(body, default=str, ensure_ascii=False)
        return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(settings: ObservabilitySettings) -> None:
    """One handler on the root logger, in the configured format (called by the CLI)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
