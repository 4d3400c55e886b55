from __future__ import annotations

import json
import logging

import pytest

from core import observability
from core.observability import ContextFilter, JsonFormatter

pytestmark = pytest.mark.unit


def render(record: logging.LogRecord) -> dict[str, object]:
    ContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))  # type: ignore[no-any-return]


def record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("gedrag.test")
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logger.makeRecord(
        "gedrag.test", logging.INFO, __file__, 1, msg, args, exc_info, extra=extra
    )


def test_json_line_has_message_extras_and_context() -> None:
    with observability.bound(request_id="r-1", tenant="t-9"):
        line = render(record("uploaded %s", "a.pdf", document_id="d-1", size=12))
    assert line["message"] == "uploaded a.pdf"
    assert line["level"] == "INFO"
    assert line["logger"] == "gedrag.test"
    assert (line["request_id"], line["tenant"], line["document_id"], line["size"]) == (
        "r-1",
        "t-9",
        "d-1",
        12,
    )
    assert "job_id" not in line  # unset context is left out, not null


def test_bound_restores_the_outer_context() -> None:
    with observability.bound(job_id="outer"):
        with observability.bound(job_id="inner", tenant="t"):
            assert observability.job_id.get() == "inner"
        assert observability.job_id.get() == "outer"
        assert observability.tenant.get() is None
    assert observability.job_id.get() is None


def test_exceptions_are_one_json_field() -> None:
    line = render(record("crashed", exc=True))
    assert "ValueError: boom" in str(line["exception"])
