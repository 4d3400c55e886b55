"""The FastAPI application: GED API under /v1, OpenAPI docs at /docs, web console at /."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from core.errors import StoreUnavailable
from core.metrics import QUEUE_DEPTH
from core.settings import Settings, get_settings
from ingestion.celery_app import GedragCelery, start_embedded_worker
from ingestion.tasks import CeleryExecutor
from runtime import Runtime
from serving import (
    api,
    apidocs,
    console,
    errors,
    eval_api,
    mcp_server,
    monitoring_api,
    openai_api,
    pages_api,
    people_api,
    qa_api,
    readiness,
    records_api,
    sorting_api,
    sources_api,
)
from serving.audit_log import AuditTrail
from serving.documents import DocumentService
from serving.middleware import Observe, RejectOversized
from serving.warmup import Warmup
from stores.vectors import SearchFilter

log = logging.getLogger(__name__)
# Multipart framing around the file: boundaries, part headers and the small form fields.
MULTIPART_SLACK = 256 * 1024


# Seconds a stopping app waits for the warm-up (the model's first load is ~7 s, more when busy).
WARMUP_SHUTDOWN_WAIT_S = 60.0
# A tenant id no key has: the warm-up's search reads the indexes and finds nothing.
WARMUP_TENANT = "-warmup-"


def _first_search(state: Any, settings: Settings) -> Callable[[], object] | None:
    """After the models: build the question-answering stack and run one search, so that the
    first question pays for neither. Not when this process must leave the local vector folder
    to separate workers (Redis broker without a Qdrant server): opening it would lock them out.
    """
    if not (settings.embedded_broker or settings.qdrant.url):
        return None

    def run() -> object:
        return qa_api.current_qa(state).search("gedrag", SearchFilter(tenant_id=WARMUP_TENANT))

    return run


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    embedded_worker: bool | None = None,
) -> FastAPI:
    """Build the app. With the in-process broker a worker runs inside it unless
    ``embedded_worker=False`` (tests that only exercise the API)."""
    settings = settings or get_settings()
    run_worker = settings.embedded_broker if embedded_worker is None else embedded_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.build(settings)
        celery = GedragCelery(settings, rt)
        app.state.sources = sources_api.attach(celery, embedded=run_worker)
        app.state.runtime = rt
        app.state.celery = celery
        app.state.service = DocumentService(celery.ingestion, CeleryExecutor(celery))
        app.state.qa = None
        app.state.release_checked_at = None
        app.state.warmup = Warmup(rt, _first_search(app.state, settings)).start()
        app.state.monitor = monitoring_api.attach(app.state, celery, embedded=run_worker)
        worker: Any = None
        if run_worker:
            worker = start_embedded_worker(celery)
            requeued = app.state.service.requeue_unfinished()
            if requeued:
                log.info("requeued unfinished jobs", extra={"count": requeued})
        try:
            async with mcp_running():
                yield
        finally:
            app.state.monitor.close()  # the traces queued are written while the stores are open
            # Interrupt running ingestion steps first (a parse may run for its whole budget):
            # their jobs are requeued, so the worker stops at once (SIGTERM: exit within 15 s).
            celery.interrupt()
            if worker is not None:
                worker.stop(in_sighandler=False)
            # The stores must outlive the warm-up's first search; a model still loading
            # (it cannot be interrupted) is waited for at most this long.
            app.state.warmup.wait(WARMUP_SHUTDOWN_WAIT_S)
            if runtime is None:
                rt.close()

    app = FastAPI(
        title="gedrag",
        version="0.1.0",
        summary="Document management with grounded, cited answers.",
        lifespan=lifespan,
        docs_url=None,  # served by apidocs from local assets, not from a CDN
        redoc_url=None,
    )
    errors.install(app)
    mcp_running = mcp_server.mount(app)
    app.include_router(api.router)
    app.include_router(pages_api.router)
    app.include_router(qa_api.router)
    app.include_router(openai_api.router)
    app.include_router(eval_api.router)
    app.include_router(sorting_api.router)
    app.include_router(records_api.router)
    app.include_router(sources_api.router)
    app.include_router(people_api.router)
    app.include_router(monitoring_api.router)
    console.install(app)
    apidocs.install(app)

    def upload_limit(path: str) -> int:
        limit = settings.api.max_upload_bytes
        return limit * api.MAX_BATCH_FILES if path.endswith("/batch") else limit

    # The last added runs first: Observe sees every request, the rejected ones too.
    app.add_middleware(RejectOversized, limit_for=upload_limit, slack=MULTIPART_SLACK)
    app.add_middleware(Observe)
    # Outermost: the audit entry is written once the answer has gone (serving.audit_log).
    app.add_middleware(AuditTrail)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses={503: {"description": "A component is not ready."}})
    def ready(request: Request) -> JSONResponse:
        """Readiness: each configured backend answers in time and the text models are loaded;
        503 naming those that are not ("loading" while the models load at start)."""
        timeout = settings.observability.ready_timeout_s
        report = readiness.probe(readiness.checks(request.app.state.runtime), timeout)
        report["models"] = request.app.state.warmup.component()
        body = readiness.as_json(report)
        return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)

    if settings.observability.metrics:

        @app.get("/metrics", tags=["ops"], include_in_schema=False)
        async def metrics(request: Request) -> Response:
            """Prometheus exposition: this process's metrics and the catalog's queue depth."""
            rt: Runtime = request.app.state.runtime
            try:
                counts = await run_in_threadpool(rt.catalog.jobs.pending_counts)
            except StoreUnavailable:
                counts = {}  # the metrics still answer while the catalog is down
            for state, n in counts.items():
                QUEUE_DEPTH.labels(state.value).set(n)
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
