"""Limits on every stage of ingestion: time budgets, caps per document, quotas per tenant.

**Parse** runs in a child process (:class:`ParsePool`): pure-Python and native parsers cannot
be interrupted in a thread, and issue #23 measured single files holding a worker thread for
13-41 minutes. A few children are kept and reused (started from a ``forkserver`` that has
imported the parsers, so a new child is ready in well under a second); each handles at most
``parse_tasks_per_child`` documents, runs under an address-space limit, and is killed with its
process group (pandoc included) the moment a document runs over ``parse_s``, which then fails
with that cap named.

**Chunk** and **embed** run in the worker's threads, where the models are; they check a
:class:`Deadline` between units of work (every token count, every embedding batch), so they
stop within one unit of their budget. Chunks and tokens per document are capped
(:func:`cap_chunks`): a document beyond a cap is indexed up to it, with a warning.

**Tenants** have daily quotas (:func:`check_upload`): documents, bytes and chunks over a
rolling 24 h window.

**Shutdown**: closing a pool (``Indexer.close``: SIGTERM, the end of ``gedrag up``) kills its
children and trips its deadlines; the running steps raise :class:`core.errors.Interrupted` and
their jobs are requeued, not failed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import resource
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from core.domain import ChunkRecord, Usage
from core.errors import (
    GedragError,
    IngestionError,
    Interrupted,
    PayloadTooLarge,
    QuotaExceeded,
    UnsupportedMediaType,
)
from core.settings import LimitsSettings
from ingestion.parsing import Element, Parsed, ParseLimits, failure_cause, parse_document

log = logging.getLogger(__name__)

T = TypeVar("T")
MB = 1024 * 1024
DAY = timedelta(hours=24)
# Modules the forkserver imports once, so that every child starts with the parsers loaded
# (~1,300 modules, ~9 s on 2 cores when a child had to import them itself).
_PRELOAD = [
    "ingestion.limits",
    "spacy",
    "markdown",
    "unstructured.partition.auto",
    "unstructured.partition.html",
    "unstructured.partition.md",
    "unstructured.partition.text",
    "unstructured.partition.csv",
    "unstructured.partition.docx",
    "unstructured.partition.pptx",
    "unstructured.partition.xlsx",
    "unstructured.partition.odt",
    "unstructured.partition.email",
    "unstructured.partition.pdf",
    "unstructured.partition.pdf_image.pdfminer_processing",
    "unstructured_inference.inference.layout",
]
# A child that does not answer its warm-up within this long is broken (it parses two tiny
# documents from memory: ~0.3 s on a loaded machine).
_START_TIMEOUT_S = 120.0
_ERRORS: dict[str, type[GedragError]] = {
    "IngestionError": IngestionError,
    "UnsupportedMediaType": UnsupportedMediaType,
}


class LimitExceeded(IngestionError):
    """A document ran over a time budget or a cap; the message names the setting."""

    code = "limit_exceeded"


# Idle parse children are retired after this long, by one reaper thread per process (a pool
# whose owner never closes it, such as a migration's, holds no process for long).
IDLE_S = 120.0
_pools: weakref.WeakSet[ParsePool] = weakref.WeakSet()
_reaper_lock = threading.Lock()
_reaper: threading.Thread | None = None


class Deadline:
    """A budget for one stage of one document, checked between units of work.

    ``check()`` raises :class:`LimitExceeded` naming the setting once ``seconds`` have passed,
    and :class:`Interrupted` once ``stop`` is set (the worker is stopping)."""

    def __init__(
        self, seconds: float, *, what: str, setting: str, stop: threading.Event | None = None
    ) -> None:
        self.seconds = seconds
        self.what = what
        self.setting = setting
        self.stop = stop
        self.start = time.monotonic()

    def check(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Interrupted(f"{self.what} interrupted: the worker is stopping")
        if time.monotonic() - self.start > self.seconds:
            raise LimitExceeded(f"{self.what} took longer than {self.seconds:g} s ({self.setting})")

    def counting(self, count: Callable[[str], int]) -> Callable[[str], int]:
        """``count`` (a tokenizer's counter) checking the deadline before each call: the
        chunker calls it once per sentence, so chunking stops within one sentence."""

        def checked(text: str) -> int:
            self.check()
            return count(text)

        return checked


# -- the parse pool -------------------------------------------------------------------------


class _Child:
    """One parse process and the pipe to it."""

    def __init__(self, ctx: Any, memory_mb: int) -> None:
        parent, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_child_main,
            args=(child, memory_mb, os.getpid()),
            name="gedrag-parse",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.conn: Connection = parent
        self.tasks = 0
        self.idle_since = time.monotonic()

    def wait_ready(self, timeout: float) -> None:
        if not self.conn.poll(timeout):
            raise IngestionError(f"the parser process did not start within {timeout:g} s")
        try:
            ready = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise IngestionError(
                f"the parser process failed to start (exit status {self.process.exitcode})"
            ) from exc
        if ready != "ready":
            raise IngestionError(f"the parser process failed to start: {ready}")

    def kill(self) -> None:
        """Kill the child and what it started (pandoc): it leads its own process group."""
        pid = self.process.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.process.join(5)
        with contextlib.suppress(OSError):
            self.conn.close()

    def retire(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(2)
        if self.process.is_alive():
            self.kill()
        with contextlib.suppress(OSError):
            self.conn.close()


class ParsePool:
    """Child processes that parse documents under a wall-clock budget, reused between
    documents. Thread-safe: each call takes a free child (or starts one, up to
    ``processes``) and waits for it; the budget counts from the moment the document is
    handed over, never while waiting for a child."""

    def __init__(self, limits: LimitsSettings, parse_limits: ParseLimits | None = None) -> None:
        self.limits = limits
        self.parse_limits = parse_limits or ParseLimits()
        self._cond = threading.Condition()
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._starting = 0
        self._closed = False
        self.killed = 0  # children killed over their budget (tests and metrics read it)
        self.started = 0
        _pools.add(self)
        _start_reaper()

    def prestart(self) -> None:
        """Start one child in the background (a worker calls it at start: the forkserver's
        first start imports the parsers, ~5 s, ~18 s on a loaded machine)."""

        def start() -> None:
            with contextlib.suppress(GedragError):
                self._release(self._acquire(), True, counted=False)

        threading.Thread(target=start, name="gedrag-parse-prestart", daemon=True).start()

    def reap(self, idle_s: float) -> None:
        """Retire children idle for longer than ``idle_s``."""
        now = time.monotonic()
        with self._cond:
            old = [c for c in self._idle if now - c.idle_since > idle_s]
            self._idle = [c for c in self._idle if c not in old]
        for child in old:
            child.retire()

    def parse(self, data: bytes, *, media_type: str, filename: str) -> Parsed:
        """:func:`ingestion.parsing.parse_document` in a child, within ``parse_s``; a document
        with scanned pages is then parsed again with OCR, within ``parse_s`` plus the OCR
        budget of each such page (GEDRAG_OCR__PAGE_S)."""
        parsed = self.run(
            _parse_in_child,
            (data, media_type, filename, self.parse_limits, True),
            budget_s=self.limits.parse_s,
            what="parsing",
            setting="GEDRAG_LIMITS__PARSE_S",
        )
        ocr = self.parse_limits.ocr
        if not parsed.scan_pages or ocr is None:
            return parsed
        return self.run(
            _parse_in_child,
            (data, media_type, filename, self.parse_limits, False),
            budget_s=self.limits.parse_s + ocr.page_s * len(parsed.scan_pages),
            what=f"reading {len(parsed.scan_pages)} scanned page(s)",
            setting="GEDRAG_OCR__PAGE_S",
        )

    def run(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        *,
        budget_s: float,
        what: str,
        setting: str,
    ) -> T:
        """``fn(*args)`` in a child (``fn`` a module-level function: it is pickled by name).
        A child that runs over the budget is killed and :class:`LimitExceeded` raised; one
        that dies raises :class:`IngestionError` with its exit status; closing the pool
        raises :class:`Interrupted` in every waiting call."""
        child = self._acquire()
        healthy = False
        try:
            try:
                child.conn.send((fn, args))
            except (OSError, ValueError) as exc:
                raise self._died(child, what) from exc
            deadline = time.monotonic() + budget_s
            while not child.conn.poll(min(0.25, max(0.0, deadline - time.monotonic()))):
                if self._closed:
                    raise Interrupted(f"{what} interrupted: the worker is stopping")
                if time.monotonic() >= deadline:
                    self.killed += 1
                    log.warning(
                        "parse child killed over its budget",
                        extra={"budget_s": budget_s, "pid": child.process.pid},
                    )
                    raise LimitExceeded(f"{what} took longer than {budget_s:g} s ({setting})")
            try:
                reply = child.conn.recv()
            except (EOFError, OSError) as exc:
                raise self._died(child, what) from exc
            # A document the parser refused leaves the child as it was; one that exhausted its
            # memory or crashed does not.
            healthy = reply[0] == "ok" or (reply[0] == "error" and reply[1] != "MemoryError")
            result: T = _unpack(reply)
            return result
        finally:
            self._release(child, healthy)

    def close(self) -> None:
        """Kill every child; calls in flight raise :class:`Interrupted`."""
        with self._cond:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
            self._cond.notify_all()
        for child in children:
            child.kill()

    @property
    def size(self) -> int:
        """Children alive now (idle or busy)."""
        with self._cond:
            return len(self._idle) + len(self._busy)

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self._busy)

    def _died(self, child: _Child, what: str) -> GedragError:
        if self._closed:
            return Interrupted(f"{what} interrupted: the worker is stopping")
        child.process.join(1)
        code = child.process.exitcode
        if code is not None and code < 0 and -code == signal.SIGKILL:
            reason = "it was killed (out of memory?)"
        elif code is not None and code < 0:
            reason = f"it crashed ({signal.Signals(-code).name})"
        else:
            reason = f"it stopped (exit status {code})"
        return IngestionError(f"the parser could not read this document: {reason}")

    def _acquire(self) -> _Child:
        with self._cond:
            while True:
                if self._closed:
                    raise Interrupted("parsing interrupted: the worker is stopping")
                while self._idle:
                    idle = self._idle.pop()
                    if idle.process.is_alive():
                        self._busy.add(idle)
                        return idle
                    idle.kill()
                if len(self._busy) + self._starting < self.limits.parse_processes:
                    self._starting += 1
                    break
                self._cond.wait(0.5)
        started = None
        try:
            started = _Child(_context(), self.limits.parse_memory_mb)
            started.wait_ready(_START_TIMEOUT_S)
        except BaseException:
            if started is not None:
                started.kill()
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._starting -= 1
            self.started += 1
            if self._closed:
                started.kill()
                raise Interrupted("parsing interrupted: the worker is stopping")
            self._busy.add(started)
        return started

    def _release(self, child: _Child, healthy: bool, *, counted: bool = True) -> None:
        child.tasks += counted
        child.idle_since = time.monotonic()
        keep = (
            healthy
            and not self._closed
            and child.process.is_alive()
            and child.tasks < self.limits.parse_tasks_per_child
        )
        if not keep:
            # Over budget, crashed or worn out: never reused (a killed child may have been
            # mid-write of its reply).
            if healthy and child.process.is_alive():
                child.retire()
            else:
                child.kill()
        with self._cond:
            self._busy.discard(child)
            if keep:
                self._idle.append(child)
            self._cond.notify()


_context_lock = threading.Lock()


def _start_reaper() -> None:
    global _reaper
    with _reaper_lock:
        if _reaper is not None and _reaper.is_alive():
            return

        def reap_forever() -> None:
            while True:
                time.sleep(IDLE_S / 4)
                for pool in list(_pools):
                    pool.reap(IDLE_S)

        _reaper = threading.Thread(target=reap_forever, name="gedrag-parse-reaper", daemon=True)
        _reaper.start()


def _context() -> Any:
    """The forkserver context, its server preloading the parsers (started on first use)."""
    with _context_lock:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx


def _unpack(reply: tuple[Any, ...]) -> Any:
    kind = reply[0]
    if kind == "ok":
        return reply[1]
    if kind == "error":
        _, name, detail = reply
        if name == "LimitExceeded":
            raise LimitExceeded(detail)
        raise _ERRORS.get(name, IngestionError)(detail)
    _, name, detail = reply
    log.error("parse child crashed", extra={"error": f"{name}: {detail}"})
    raise IngestionError(f"the parser failed on this document ({name})")


def _parse_in_child(
    data: bytes, media_type: str, filename: str, parse_limits: ParseLimits, defer_ocr: bool
) -> Parsed:
    try:
        return parse_document(
            data,
            media_type=media_type,
            filename=filename,
            limits=parse_limits,
            defer_ocr=defer_ocr,
        )
    except (IngestionError, UnsupportedMediaType):
        raise
    except Exception as exc:  # anything a parser raised that parse() did not translate
        mime = media_type.partition(";")[0].strip().lower()
        raise IngestionError(failure_cause(exc, mime)) from exc


_WARM_UP = (
    (b"# Title\n\nSome text to read.\n", "text/markdown"),
    (b"a,b\n1,2\n", "text/csv"),
)


def _child_main(conn: Connection, memory_mb: int, worker_pid: int) -> None:
    """A parse child: its own process group (so a kill reaches pandoc), dies with the worker
    that uses it, bounded memory; answers ``(fn, args)`` messages until ``None``."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    _watch(worker_pid)
    if memory_mb:
        limit = memory_mb * MB
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        for data, media_type in _WARM_UP:  # first calls initialise spaCy, pandas...
            parse_document(data, media_type=media_type, filename="warm-up")
    except Exception as exc:  # a broken installation: say so to the parent
        conn.send(f"{type(exc).__name__}: {exc}")
        return
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, args = task
        reply: tuple[Any, ...]
        try:
            reply = ("ok", fn(*args))
        except GedragError as exc:
            # A cause of MemoryError retires the child (the parent reads the name).
            exhausted = isinstance(exc.__cause__, MemoryError)
            reply = ("error", "MemoryError" if exhausted else type(exc).__name__, exc.detail)
        except MemoryError:
            reply = ("error", "MemoryError", failure_cause(MemoryError(), ""))
        except BaseException as exc:
            reply = ("crash", type(exc).__name__, repr(exc)[:1000])
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return
        except Exception as exc:  # a result that cannot be pickled
            conn.send(("crash", type(exc).__name__, repr(exc)[:1000]))


def _watch(worker_pid: int) -> None:
    """Exit as soon as the worker is gone (SIGKILL): the child's parent is the forkserver,
    which outlives a killed worker for as long as its own shutdown takes."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(worker_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass  # alive, under another user

    threading.Thread(target=watch, name="gedrag-parse-watch", daemon=True).start()


def _die_with_parent() -> None:
    """Linux: SIGKILL this child when its parent (the forkserver, which exits with the worker
    process) dies, so a killed worker leaves no parser running."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


# -- caps per document ------------------------------------------------------------------------

# A token of the embedding model covers at most ~16 characters of text, whitespace aside
# (MiniLM's word pieces; a longer run is several pieces): text beyond max_tokens x 16 characters
# can never be indexed, so it is not chunked at all. Measured: a 5 MiB Markdown code block took
# 17 s to chunk into 6,827 chunks, of which max_chunks (5,000) could be kept.
CHARS_PER_TOKEN_MAX = 16


def within_token_cap(elements: Sequence[Element], max_tokens: int) -> tuple[list[Element], bool]:
    """The elements up to what ``max_tokens`` tokens could cover (the last one cut), and
    whether anything was left out."""
    budget = max_tokens * CHARS_PER_TOKEN_MAX
    kept: list[Element] = []
    used = 0
    for element in elements:
        size = len(element.text) - sum(1 for c in element.text if c.isspace())
        if used + size <= budget:
            kept.append(element)
            used += size
            continue
        room = budget - used
        if room > 0:
            cut = _cut(element.text, room)
            kept.append(replace(element, text=cut, table_html=None))
        return kept, True
    return kept, False


def _cut(text: str, visible: int) -> str:
    """The longest start of ``text`` holding ``visible`` non-space characters."""
    seen = 0
    for i, c in enumerate(text):
        if not c.isspace():
            seen += 1
            if seen > visible:
                return text[:i]
    return text


@dataclass(frozen=True)
class Capped:
    """The chunks kept and the warning a user sees when some were left out."""

    chunks: list[ChunkRecord]
    warning: str | None = None


def cap_chunks(
    chunks: Sequence[ChunkRecord], limits: LimitsSettings, *, tenant_room: int | None = None
) -> Capped:
    """The document's chunks up to ``max_chunks``, ``max_tokens`` and what the tenant's daily
    chunk quota leaves (``tenant_room``); beyond a cap the rest is left out and said."""
    kept: list[ChunkRecord] = []
    tokens = 0
    reason = ""
    room = limits.max_chunks if tenant_room is None else min(limits.max_chunks, tenant_room)
    for c in chunks:
        if len(kept) >= room:
            reason = (
                f"max_chunks={limits.max_chunks} (GEDRAG_LIMITS__MAX_CHUNKS)"
                if room == limits.max_chunks
                else f"the tenant's daily chunk quota, {limits.tenant_chunks_per_day} "
                "(GEDRAG_LIMITS__TENANT_CHUNKS_PER_DAY)"
            )
            break
        if tokens + c.token_count > limits.max_tokens:
            reason = f"max_tokens={limits.max_tokens} (GEDRAG_LIMITS__MAX_TOKENS)"
            break
        kept.append(c)
        tokens += c.token_count
    if len(kept) == len(chunks):
        return Capped(list(chunks))
    page = next((c.page_start for c in reversed(kept) if c.page_start is not None), None)
    where = f" (up to page {page})" if page is not None else ""
    warning = (
        f"indexed up to a limit: {len(kept)} of {len(chunks)} chunks are searchable{where}; "
        f"the rest is beyond {reason}"
    )
    return Capped(kept, warning)


# -- tenant quotas ----------------------------------------------------------------------------


# What a tenant has used since a moment (the catalog's ``versions.usage_since``).
UsageSince = Callable[[str, datetime], Usage]


def check_upload(
    usage_since: UsageSince, limits: LimitsSettings, tenant_id: str, sizes: Iterable[int]
) -> None:
    """Refuse uploads beyond the tenant's daily quotas: :class:`QuotaExceeded` (429, with
    when to retry), or :class:`PayloadTooLarge` (413) for files larger than a whole day's
    bytes (no retry would help)."""
    sizes = list(sizes)
    total = sum(sizes)
    if total > limits.tenant_bytes_per_day:
        raise PayloadTooLarge(
            f"{total} bytes exceed the tenant's daily upload quota of "
            f"{limits.tenant_bytes_per_day} bytes (GEDRAG_LIMITS__TENANT_BYTES_PER_DAY)"
        )
    now = datetime.now(UTC)
    used = usage_since(tenant_id, now - DAY)
    retry = _retry_after(used.oldest, now)
    if used.uploads + len(sizes) > limits.tenant_documents_per_day:
        raise QuotaExceeded(
            f"daily upload quota reached: {used.uploads} uploads in the last 24 h, "
            f"{limits.tenant_documents_per_day} allowed (GEDRAG_LIMITS__TENANT_DOCUMENTS_PER_DAY)",
            retry_after_s=retry,
        )
    if used.bytes + total > limits.tenant_bytes_per_day:
        raise QuotaExceeded(
            f"daily upload quota reached: {used.bytes} bytes uploaded in the last 24 h, "
            f"{limits.tenant_bytes_per_day} allowed (GEDRAG_LIMITS__TENANT_BYTES_PER_DAY)",
            retry_after_s=retry,
        )
    if used.chunks >= limits.tenant_chunks_per_day:
        raise QuotaExceeded(
            f"daily indexing quota reached: {used.chunks} chunks indexed in the last 24 h, "
            f"{limits.tenant_chunks_per_day} allowed (GEDRAG_LIMITS__TENANT_CHUNKS_PER_DAY)",
            retry_after_s=retry,
        )


def chunk_room(usage_since: UsageSince, limits: LimitsSettings, tenant_id: str) -> int:
    """Chunks the tenant may still index in the rolling 24 h window."""
    used = usage_since(tenant_id, datetime.now(UTC) - DAY)
    return max(0, limits.tenant_chunks_per_day - used.chunks)


def _retry_after(oldest: datetime | None, now: datetime) -> int:
    if oldest is None:
        return 60
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max(1, math.ceil((oldest + DAY - now).total_seconds()))


# -- Celery time limits -----------------------------------------------------------------------


def task_time_limits(limits: LimitsSettings) -> dict[str, tuple[float, float]]:
    """(soft, hard) Celery time limits per step, derived from the budgets: the budget plus
    what the step does around it (catalog and store writes, ~60 s at most), then 30 s more
    for the hard limit. Celery enforces them in prefork pools; gedrag's thread and solo
    workers rely on the child process and the deadlines above, which these only back up."""
    # Parse and chunk, terms (no model), entities (rules or an LLM, within EMBED_S), publish.
    first_stage = limits.parse_s + limits.chunk_s + limits.embed_s + 120
    vectors = limits.embed_s + 120
    return {
        "first_stage": (first_stage, first_stage + 30),
        "vectors": (vectors, vectors + 30),
        "finalize": (120, 150),
        "delete": (300, 330),
    }
