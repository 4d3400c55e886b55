"""Limits on ingestion: the parse child process and its budget, deadlines, caps per document,
tenant quotas, Celery time limits derived from the budgets."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.domain import ChunkRecord, Usage
from core.errors import IngestionError, Interrupted, PayloadTooLarge, QuotaExceeded
from core.settings import LimitsSettings
from ingestion.limits import (
    Deadline,
    LimitExceeded,
    ParsePool,
    cap_chunks,
    check_upload,
    task_time_limits,
    within_token_cap,
)
from ingestion.parsing import Element

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    pool = ParsePool(LimitsSettings(parse_s=20, parse_processes=1, parse_tasks_per_child=3))
    yield pool
    pool.close()


def test_documents_parse_in_a_reused_child_with_their_warnings(pool: ParsePool) -> None:
    html = (
        b'<html><body><p>Visible words.</p><p style="display:none">Hidden order.</p></body></html>'
    )

    parsed = pool.parse(html, media_type="text/html", filename="a.html")
    started = pool.started
    again = pool.parse(b"Plain text, twice.", media_type="text/plain", filename="b.txt")

    assert [e.text for e in parsed.elements] == ["Visible words."]
    assert parsed.warnings and "hidden text not indexed" in parsed.warnings[0]
    assert again.elements[0].text == "Plain text, twice."
    assert pool.started == started  # the same child served both
    assert pool.size == 1 and pool.busy == 0


def test_a_child_over_its_budget_is_killed_and_the_cap_named(pool: ParsePool) -> None:
    killed = pool.killed
    started = time.monotonic()

    with pytest.raises(LimitExceeded, match=r"^sleeping took longer than 1 s \(GEDRAG_X\)$"):
        pool.run(time.sleep, (60,), budget_s=1, what="sleeping", setting="GEDRAG_X")

    assert time.monotonic() - started < 5
    assert pool.killed == killed + 1 and pool.busy == 0
    assert pool.parse(b"after", media_type="text/plain", filename="c.txt").elements


def test_a_child_that_dies_fails_the_document_with_its_exit_status(pool: ParsePool) -> None:
    with pytest.raises(
        IngestionError, match=r"could not read this document: it stopped \(exit status 3\)"
    ):
        pool.run(os._exit, (3,), budget_s=10, what="parsing", setting="S")
    assert pool.parse(b"still works", media_type="text/plain", filename="d.txt").elements


def test_a_document_needing_too_much_memory_fails_with_that_cause() -> None:
    small = ParsePool(LimitsSettings(parse_processes=1, parse_memory_mb=3000))
    try:
        with pytest.raises(IngestionError, match=r"needs more memory than one document may use"):
            small.run(bytearray, (6 * 1024**3,), budget_s=30, what="parsing", setting="S")
    finally:
        small.close()


def test_a_child_is_replaced_after_its_tasks(pool: ParsePool) -> None:
    started = pool.started
    for i in range(4):
        pool.parse(f"text {i}".encode(), media_type="text/plain", filename="e.txt")
    assert pool.started > started  # 3 tasks per child


def test_closing_interrupts_a_parse_at_once() -> None:
    closing = ParsePool(LimitsSettings(parse_processes=1, parse_s=60))
    closing.parse(b"warm", media_type="text/plain", filename="w.txt")
    errors: list[BaseException] = []

    def parse_forever() -> None:
        try:
            closing.run(time.sleep, (60,), budget_s=60, what="parsing", setting="S")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=parse_forever)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    closing.close()
    thread.join(10)

    assert not thread.is_alive() and time.monotonic() - started < 3
    assert isinstance(errors[0], Interrupted)
    with pytest.raises(Interrupted):
        closing.parse(b"x", media_type="text/plain", filename="x.txt")


def test_deadline_names_its_setting_and_honours_a_stop() -> None:
    deadline = Deadline(0.05, what="chunking", setting="GEDRAG_LIMITS__CHUNK_S")
    count = deadline.counting(len)
    assert count("abc") == 3
    time.sleep(0.1)
    with pytest.raises(LimitExceeded, match=r"chunking took longer than 0.05 s"):
        count("abc")
    stop = threading.Event()
    stopped = Deadline(60, what="embedding", setting="S", stop=stop)
    stopped.check()
    stop.set()
    with pytest.raises(Interrupted):
        stopped.check()


def chunk(i: int, tokens: int = 10, page: int | None = None) -> ChunkRecord:
    return ChunkRecord(
        id=f"c{i}",
        tenant_id="t",
        document_id="d",
        version_id="v",
        ordinal=i,
        text=f"chunk {i}",
        section_path=(),
        page_start=page,
        page_end=page,
        language="en",
        token_count=tokens,
    )


def test_chunks_beyond_a_cap_are_left_out_with_a_warning() -> None:
    chunks = [chunk(i, page=i // 2 + 1) for i in range(10)]

    assert cap_chunks(chunks, LimitsSettings()).warning is None
    by_count = cap_chunks(chunks, LimitsSettings(max_chunks=4))
    by_tokens = cap_chunks(chunks, LimitsSettings(max_tokens=35))
    by_quota = cap_chunks(chunks, LimitsSettings(), tenant_room=2)

    assert [c.id for c in by_count.chunks] == ["c0", "c1", "c2", "c3"]
    assert by_count.warning == (
        "indexed up to a limit: 4 of 10 chunks are searchable (up to page 2); the rest is "
        "beyond max_chunks=4 (GEDRAG_LIMITS__MAX_CHUNKS)"
    )
    assert len(by_tokens.chunks) == 3 and "GEDRAG_LIMITS__MAX_TOKENS" in (by_tokens.warning or "")
    assert len(by_quota.chunks) == 2
    assert "GEDRAG_LIMITS__TENANT_CHUNKS_PER_DAY" in (by_quota.warning or "")


def test_text_no_token_budget_could_hold_is_not_chunked() -> None:
    elements = [
        Element(text="a" * 100, kind="NarrativeText", page=None, section_path=()),
        Element(text="b   " * 100, kind="NarrativeText", page=None, section_path=()),
        Element(text="c" * 100, kind="NarrativeText", page=None, section_path=()),
    ]

    kept, cut = within_token_cap(elements, max_tokens=10)  # 160 visible characters

    assert cut and [e.text[:1] for e in kept] == ["a", "b"]
    assert kept[1].text.count("b") == 60  # spaces do not count
    assert within_token_cap(elements, max_tokens=100) == (elements, False)


class FakeUsage:
    def __init__(self, usage: Usage) -> None:
        self.usage = usage

    def usage_since(self, tenant_id: str, since: datetime) -> Usage:
        return self.usage


def test_quotas_refuse_uploads_beyond_the_day() -> None:
    limits = LimitsSettings(
        tenant_documents_per_day=3, tenant_bytes_per_day=1000, tenant_chunks_per_day=50
    )
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    fresh = FakeUsage(Usage(uploads=0, bytes=0, chunks=0))

    check_upload(fresh.usage_since, limits, "t", [400, 500])
    with pytest.raises(PayloadTooLarge, match="GEDRAG_LIMITS__TENANT_BYTES_PER_DAY"):
        check_upload(fresh.usage_since, limits, "t", [1001])
    with pytest.raises(QuotaExceeded, match="TENANT_DOCUMENTS_PER_DAY") as refused:
        check_upload(FakeUsage(Usage(3, 10, 0, hour_ago)).usage_since, limits, "t", [1])
    assert 23 * 3600 - 60 < (refused.value.retry_after_s or 0) <= 23 * 3600
    with pytest.raises(QuotaExceeded, match="TENANT_BYTES_PER_DAY"):
        check_upload(FakeUsage(Usage(1, 900, 0, hour_ago)).usage_since, limits, "t", [200])
    with pytest.raises(QuotaExceeded, match="TENANT_CHUNKS_PER_DAY"):
        check_upload(FakeUsage(Usage(1, 10, 50, hour_ago)).usage_since, limits, "t", [1])


def test_celery_time_limits_follow_the_budgets() -> None:
    limits = task_time_limits(LimitsSettings(parse_s=100, chunk_s=20, embed_s=300))

    assert limits["first_stage"] == (540, 570)  # parse + chunk + entities + 120 s of writes
    assert limits["vectors"] == (420, 450)
    assert all(soft < hard for soft, hard in limits.values())
