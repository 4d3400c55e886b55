"""The FastAPI application: GED API under /v1, OpenAPI docs at /docs, web console at /."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
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
from serving import api, console, errors, eval_api, qa_api, readiness
from serving.documents import DocumentService
from serving.middleware import Observe, RejectOversized

log = logging.getLogger(__name__)
# Multipart framing around the file: boundaries, part headers and the small form fields.
MULTIPART_SLACK = 256 * 1024


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
        app.state.runtime = rt
        app.state.celery = celery
        app.state.service = DocumentService(celery.ingestion, CeleryExecutor(celery))
        app.state.qa = None
        app.state.release_checked_at = None
        worker: Any = None
        if run_worker:
            worker = start_embedded_worker(celery)
            requeued = app.state.service.requeue_unfinished()
            if requeued:
                log.info("requeued unfinished jobs", extra={"count": requeued})
        try:
            yield
        finally:
            if worker is not None:
                worker.stop(in_sighandler=False)
            if runtime is None:
                rt.close()

    app = FastAPI(
        title="gedrag",
        version="0.1.0",
        summary="Document management with grounded, cited answers.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(api.router)
    app.include_router(qa_api.router)
    app.include_router(eval_api.router)
    console.install(app)

    def upload_limit(path: str) -> int:
        limit = settings.api.max_upload_bytes
        return limit * api.MAX_BATCH_FILES if path.endswith("/batch") else limit

    # The last added runs first: Observe sees every request, the rejected ones too.
    app.add_middleware(RejectOversized, limit_for=upload_limit, slack=MULTIPART_SLACK)
    app.add_middleware(Observe)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    def ready(request: Request) -> JSONResponse:
        """Readiness: each configured backend answers in time; 503 naming those that do not."""
        timeout = settings.observability.ready_timeout_s
        report = readiness.probe(readiness.checks(request.app.state.runtime), timeout)
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
