"""Traces are written off the request path: a bounded queue and one writer thread.

A request only puts its :class:`~monitoring.traces.Capture` in the queue (``put_nowait``: a
full queue drops the trace and counts it, it never makes an answer wait). The writer takes what
has piled up, builds the traces, stores them in one transaction, exports them (OpenTelemetry)
and hands them to the listeners (the canary's guardrails). A catalog that is briefly down is
retried; a batch that still fails is dropped, counted and logged, and the writer goes on.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.errors import TransientError
from core.metrics import TRACE_QUEUE, TRACES
from monitoring.traces import Capture, Environment, build
from stores.catalog.traces import TraceRecord, TraceRepository

log = logging.getLogger(__name__)

# A briefly unavailable catalog (a PostgreSQL failover, a locked SQLite file) is tried again
# after 0.5, 1 and 2 s; longer outages drop the batch rather than hold memory without bound.
RETRY_DELAYS_S = (0.5, 1.0, 2.0)

Listener = Callable[[list[TraceRecord]], None]
_STOP = object()
_FLUSH = object()  # flush() is waiting: write what is gathered now, without lingering


class TraceWriter:
    """The queue and its writer thread. ``record`` never blocks; ``flush`` waits until what
    was queued is written (tests, benchmarks, shutdown)."""

    def __init__(
        self,
        repo: TraceRepository,
        *,
        environment: Callable[[], Environment],
        count_tokens: Callable[[str], int],
        queue_size: int = 10_000,
        batch_size: int = 200,
        linger_s: float = 0.0,
        exporters: Sequence[Listener] = (),
        listeners: Sequence[Listener] = (),
    ) -> None:
        self.repo = repo
        self.environment = environment
        self.count_tokens = count_tokens
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.exporters = list(exporters)
        self.listeners = list(listeners)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="gedrag-traces", daemon=True)
        self._thread.start()

    def record(self, capture: Capture) -> bool:
        """Queue a trace; False (and counted as dropped) when the queue is full."""
        return self._put(capture)

    def call(self, job: Callable[[], object]) -> bool:
        """Run ``job`` on the writer thread after the traces queued before it (a guardrail
        check after feedback): off the request path, in order with the traces."""
        return self._put(job)

    def _put(self, item: Any) -> bool:
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._done(1)
            if isinstance(item, Capture):
                TRACES.labels("dropped").inc()
            return False
        TRACE_QUEUE.set(self._queue.qsize())
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        if self.linger_s > 0:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_FLUSH)
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (at most ``timeout``), then stop the thread."""
        self.flush(timeout)
        try:
            self._queue.put(_STOP, timeout=1)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _done(self, n: int) -> None:
        with self._idle:
            self._pending -= n
            if self._pending <= 0:
                self._idle.notify_all()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if item is _FLUSH:
                continue
            batch = [item]
            # Gather for up to linger_s: one transaction for the traces of that while, not one
            # per answer (the commit is most of a trace's cost on this thread).
            until = time.monotonic() + self.linger_s
            while len(batch) < self.batch_size:
                try:
                    wait = until - time.monotonic()
                    more = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _FLUSH:
                    until = 0.0  # someone waits: take what is queued, then write
                    continue
                if more is _STOP:
                    self._queue.put(_STOP)  # after this batch
                    break
                batch.append(more)
            TRACE_QUEUE.set(self._queue.qsize())
            try:
                self._write(batch)
            except Exception:  # the writer must outlive any one batch
                log.exception("trace batch failed", extra={"traces": len(batch)})
            finally:
                self._done(len(batch))

    def _write(self, batch: list[Any]) -> None:
        captures = [x for x in batch if isinstance(x, Capture)]
        records = self._build(captures) if captures else []
        if records and self._store(records):
            for export in self.exporters:
                try:
                    export(records)
                except Exception:  # an unreachable collector loses spans, never traces
                    log.warning("trace export failed", exc_info=True)
            for listener in self.listeners:
                listener(records)
        for job in batch:
            if callable(job) and not isinstance(job, Capture):
                job()

    def _build(self, captures: list[Capture]) -> list[TraceRecord]:
        try:
            env = self.environment()
        except Exception:
            log.warning("trace environment unavailable", exc_info=True)
            env = Environment()
        try:
            known = self.repo.chunk_tokens([p.chunk_id for c in captures for p in c.used])
        except TransientError:
            known = {}  # counted from the text instead
        records = []
        for c in captures:
            try:
                records.append(build(c, env, self.count_tokens, known))
            except Exception:
                TRACES.labels("failed").inc()
                log.exception("trace not built", extra={"trace_id": c.served.id})
        return records

    def _store(self, records: list[TraceRecord]) -> bool:
        for delay in (*RETRY_DELAYS_S, None):
            try:
                self.repo.add(records)
            except TransientError as exc:
                if delay is None:
                    TRACES.labels("failed").inc(len(records))
                    log.warning(
                        "traces dropped: the catalog is unavailable",
                        extra={"traces": len(records), "error": str(exc)},
                    )
                    return False
                time.sleep(delay)
                continue
            TRACES.labels("written").inc(len(records))
            return True
        return False
