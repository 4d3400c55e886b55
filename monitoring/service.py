"""The monitoring of a serving process: every question goes through :meth:`Monitor.begin`,
which picks the release that answers it (production, or the canary for the callers in its
share) and hands back an :class:`Answering` that traces what was served; shadow answers,
replays, drift reports and the daily job are here too.

serving wires it (``serving.monitoring_api``): this package never imports serving, so the QA
stacks of the production and challenger releases come in as callables.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from core import ids
from core.errors import GedragError
from core.metrics import SHADOW
from core.settings import Settings
from evaluation.runner import code_version
from monitoring import alerts, drift
from monitoring.online import Experiments, in_canary
from monitoring.otel import OtelExport
from monitoring.recorder import TraceWriter
from monitoring.replay import replay
from monitoring.tasks import DailyTicker
from monitoring.traces import Capture, Environment, Served
from retrieval.search import SearchResult
from retrieval.service import QA, Reply
from retrieval.types import Answer, Message, Passage
from runtime import Runtime
from stores.catalog.evaluation import EvalStore
from stores.catalog.models import utcnow
from stores.catalog.traces import Arm, Experiment, Route, TraceRecord
from stores.vectors import SearchFilter
from textmodels.embedding import installed_revision

log = logging.getLogger(__name__)

# The replay inputs that change only with a re-embedding or a deployment: read once a minute.
ENVIRONMENT_TTL_S = 60.0

Production = Callable[[], tuple[str | None, QA]]
ReleaseQA = Callable[[str], QA]


@dataclass
class Answering:
    """One question being answered: the QA stack of its arm, and the trace to write once it
    is answered (``trace_id`` is ``None`` when tracing is off)."""

    monitor: Monitor
    qa: QA
    served: Served | None
    experiment: Experiment | None
    started: float
    at: datetime

    @property
    def trace_id(self) -> str | None:
        return None if self.served is None else self.served.id

    def searched(
        self, query: str, flt: SearchFilter, top_k: int | None, found: SearchResult
    ) -> None:
        """A search was answered."""
        self._record(query, query, flt, top_k, found)

    def answered(
        self,
        question: str,
        flt: SearchFilter,
        top_k: int | None,
        reply: Reply,
        history: Sequence[Message] = (),
    ) -> None:
        """An answer was given (``/v1/ask``, ``/v1/chat``, OpenAI-compatible, MCP)."""
        self._record(
            question,
            reply.question,
            flt,
            top_k,
            reply.search,
            answer=reply.answer,
            draft=reply.draft,
            used=reply.used,
            history=history,
        )

    def streamed(
        self,
        question: str,
        standalone: str,
        flt: SearchFilter,
        top_k: int | None,
        found: SearchResult,
        used: Sequence[Passage],
        draft: str,
        answer: Answer,
        history: Sequence[Message] = (),
    ) -> None:
        """A streamed answer finished (its draft is the text the generator streamed)."""
        self._record(
            question,
            standalone,
            flt,
            top_k,
            found,
            answer=answer,
            draft=draft,
            used=used,
            history=history,
            stream=True,
        )

    def _record(
        self,
        question: str,
        standalone: str,
        flt: SearchFilter,
        top_k: int | None,
        found: SearchResult,
        **answer: Any,
    ) -> None:
        if self.served is None:
            return
        capture = Capture(
            served=self.served,
            qa=self.qa,
            question=question,
            standalone=standalone,
            flt=flt,
            top_k=top_k,
            search=found,
            created_at=self.at,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            **answer,
        )
        self.monitor.writer.record(capture)
        exp = self.experiment
        if (
            exp is not None
            and exp.mode == "shadow"
            and self.served.arm == "production"
            and capture.answer is not None
        ):
            self.monitor.shadows.submit(capture, exp)


class ShadowRunner:
    """Answers questions again with the shadow release, one at a time, on its own thread;
    a full queue skips the question (counted), never delays an answer."""

    def __init__(self, monitor: Monitor, size: int) -> None:
        self.monitor = monitor
        self._queue: queue.Queue[tuple[Capture, Experiment] | None] = queue.Queue(maxsize=size)
        self._thread = threading.Thread(target=self._run, name="gedrag-shadow", daemon=True)
        self._thread.start()

    def submit(self, capture: Capture, exp: Experiment) -> None:
        try:
            self._queue.put_nowait((capture, exp))
        except queue.Full:
            SHADOW.labels("skipped").inc()

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=1)
        except queue.Full:
            return
        self._thread.join(5)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the queued questions are answered (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._answer(*job)
            except Exception:
                SHADOW.labels("failed").inc()
                log.exception("shadow answer failed")
            finally:
                self._queue.task_done()

    def _answer(self, served: Capture, exp: Experiment) -> None:
        qa = self.monitor.qa_for(exp.release_id)
        started, at = time.perf_counter(), utcnow()
        reply = qa.ask(served.question, served.flt, top_k=served.top_k, history=served.history)
        shadow = replace(
            served.served,
            id=ids.new_id(),
            release_id=exp.release_id,
            arm="shadow",
            experiment_id=exp.id,
            parent_id=served.served.id,
        )
        self.monitor.writer.record(
            Capture(
                served=shadow,
                qa=qa,
                question=served.question,
                standalone=reply.question,
                flt=served.flt,
                top_k=served.top_k,
                search=reply.search,
                created_at=at,
                latency_ms=(time.perf_counter() - started) * 1000,
                answer=reply.answer,
                draft=reply.draft,
                used=reply.used,
                history=served.history,
            )
        )
        SHADOW.labels("answered").inc()


class Monitor:
    """Traces, experiments, shadow answers, replays and drift reports of one process."""

    def __init__(
        self,
        rt: Runtime,
        *,
        production: Production,
        qa_for: ReleaseQA,
        exporters: Sequence[Callable[[list[TraceRecord]], None]] | None = None,
    ) -> None:
        self.rt = rt
        self.settings = rt.settings.monitoring
        self.enabled = self.settings.traces
        self.production = production
        self.qa_for = qa_for
        self.store = EvalStore(rt.catalog)
        self._names: dict[str, str] = {}
        self.experiments = Experiments(
            rt.catalog.traces, self.store, self.settings, name_of=self.tenant_name
        )
        self.otel = OtelExport.from_settings(self.settings) if exporters is None else None
        self._code_version = code_version()
        self._env: tuple[float, Environment] | None = None
        self.writer = TraceWriter(
            rt.catalog.traces,
            environment=self.environment,
            count_tokens=lambda text: rt.models.embedder.count_tokens(text),
            queue_size=self.settings.queue_size,
            batch_size=self.settings.batch_size,
            linger_s=self.settings.linger_s,
            exporters=list(exporters or ([self.otel] if self.otel else [])),
            listeners=[self.experiments.after_write],
        )
        self.shadows = ShadowRunner(self, self.settings.shadow_queue)
        self.ticker: DailyTicker | None = None  # the embedded mode's daily job

    def begin(
        self,
        tenant_id: str,
        caller: str,
        route: Route,
        *,
        pinned: tuple[str, QA] | None = None,
    ) -> Answering:
        """The release that answers this caller (``pinned``: the one the caller named), and
        the trace to fill."""
        exp = self.experiments.running(tenant_id) if self.enabled and pinned is None else None
        arm: Arm = "production"
        release_id: str | None
        if pinned is not None:
            (release_id, qa), arm = pinned, "pinned"
        else:
            release_id, qa = self.production()
        if (
            exp is not None
            and exp.mode == "canary"
            and route != "search"
            and in_canary(exp.id, caller, exp.share)
        ):
            qa, release_id, arm = self.qa_for(exp.release_id), exp.release_id, "canary"
        served = None
        if self.enabled:
            served = Served(
                id=ids.new_id(),
                tenant_id=tenant_id,
                caller=caller,
                route=route,
                release_id=release_id,
                arm=arm,
                experiment_id=exp.id if exp is not None else None,
            )
        return Answering(self, qa, served, exp, time.perf_counter(), utcnow())

    def environment(self) -> Environment:
        """What a replay needs besides the question (cached a minute)."""
        now = time.monotonic()
        if self._env is not None and now - self._env[0] < ENVIRONMENT_TTL_S:
            return self._env[1]
        s: Settings = self.rt.settings
        vectors: Any = self.rt.vectors
        env = Environment(
            collection=str(getattr(vectors, "collection", "")),
            alias_target=vectors.alias_target() if hasattr(vectors, "alias_target") else None,
            embedding_model=self.rt.models.embedder.model_id,
            code_version=self._code_version,
            extra={
                "embedding_revision": installed_revision(s.embedding.model),
                "llm_model": s.llm.model if s.generation.backend == "vllm" else None,
            },
        )
        self._env = (now, env)
        return env

    def tenant_name(self, tenant_id: str) -> str:
        if tenant_id not in self._names:
            self._names = {t.id: t.name for t in self.rt.catalog.tenants.all()}
        return self._names.get(tenant_id, tenant_id)

    def feedback_recorded(self, record: TraceRecord) -> None:
        """Feedback on a canary's (or its production arm's) answer: its guardrails again, on
        the writer thread."""
        if record.experiment_id is not None:
            tenant, experiment = record.tenant_id, record.experiment_id
            self.writer.call(lambda: self.experiments.check(tenant, experiment, force=True))

    def replay(self, trace: TraceRecord) -> dict[str, Any]:
        """The trace's question again under its release (production's settings when the
        trace was answered before any release was promoted)."""
        if trace.release_id is not None:
            qa = self.qa_for(trace.release_id)
        else:
            _, qa = self.production()
        return replay(trace, qa, self.environment(), self.rt.catalog.versions.active)

    def report(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        reference_since: datetime | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """A drift report of the tenant, stored and published (gauges, alerts, webhook)."""
        return daily_report(
            self.rt,
            tenant_id,
            since=since,
            reference_since=reference_since,
            now=now,
            name=self.tenant_name(tenant_id),
        )

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait for the shadow answers and the traces queued so far (tests, benchmarks)."""
        return self.shadows.drain(timeout) and self.writer.flush(timeout)

    def close(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
        self.shadows.close()
        self.writer.close()
        if self.otel is not None:
            self.otel.shutdown()


def daily_report(
    rt: Runtime,
    tenant_id: str,
    *,
    name: str,
    since: datetime | None = None,
    reference_since: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build, store and publish one tenant's drift report; returns its JSON."""
    cfg = rt.settings.monitoring
    found = drift.report(
        rt.catalog.traces,
        EvalStore(rt.catalog),
        tenant_id,
        cfg,
        rt.models.embedder.embed_queries,
        now=now,
        since=since,
        reference_since=reference_since,
    )
    data = found.to_dict()
    stored = rt.catalog.traces.save_report(tenant_id, data, len(found.alerts))
    alerts.publish(found, name, cfg)
    return {**data, "id": stored.id}


def daily(rt: Runtime) -> dict[str, Any]:
    """The daily job: traces past their tenant's retention purged, then a drift report of
    every tenant that was asked something in the last two windows."""
    cfg = rt.settings.monitoring
    purged = rt.catalog.traces.purge_expired(cfg.retention_days)
    since = utcnow() - timedelta(days=cfg.window_days + cfg.reference_days)
    names = {t.id: t.name for t in rt.catalog.tenants.all()}
    reports: dict[str, int] = {}
    for tenant_id in rt.catalog.traces.tenants_with_traces(since):
        try:
            data = daily_report(rt, tenant_id, name=names.get(tenant_id, tenant_id))
        except GedragError as exc:  # one tenant's failure must not stop the others
            log.warning("drift report failed", extra={"tenant": tenant_id, "error": exc.detail})
            continue
        reports[names.get(tenant_id, tenant_id)] = len(data["alerts"])
    log.info(
        "monitoring daily run", extra={"purged": sum(purged.values()), "reports": len(reports)}
    )
    return {"purged": purged, "alerts": reports}
