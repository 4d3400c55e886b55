"""The FastAPI application: GED API under /v1, OpenAPI docs at /docs, web console at /."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from core import observability
from core.errors import StoreUnavailable
from core.metrics import HTTP_LATENCY, QUEUE_DEPTH
from core.settings import Settings, get_settings
from ingestion.celery_app import GedragCelery, start_embedded_worker
from ingestion.runtime import Runtime
from serving import api, console, errors, eval_api, qa_api, readiness
from serving.documents import DocumentService

log = logging.getLogger(__name__)
access = logging.getLogger("gedrag.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's own request id is kept when it is a plain token; anything else is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

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
        app.state.service = DocumentService(rt, celery)
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

    @app.middleware("http")
    async def reject_oversized(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """413 from Content-Length alone, before the body is read and spooled to disk."""
        length = request.headers.get("content-length")
        if request.method in ("POST", "PUT") and length and length.isdigit():
            limit = settings.api.max_upload_bytes
            if request.url.path.endswith("/batch"):
                limit *= api.MAX_BATCH_FILES
            if int(length) > limit + MULTIPART_SLACK:
                return JSONResponse(
                    errors.error_body(
                        "payload_too_large",
                        f"request body of {length} bytes exceeds the {limit} byte upload limit",
                    ),
                    status_code=413,
                )
        return await call_next(request)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Request id (kept from the caller or made), latency histogram, one access log line.
        Outermost middleware: rejected requests are counted too. A streamed response is timed
        to its headers."""
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        with observability.bound(request_id=rid):
            start = time.perf_counter()
            status = 500
            try:
                response = await call_next(request)
                status = response.status_code
            finally:
                elapsed = time.perf_counter() - start
                # The route template, not the path: ids must not become label values.
                route = getattr(request.scope.get("route"), "path", "unmatched")
                HTTP_LATENCY.labels(request.method, route, str(status)).observe(elapsed)
                access.info(
                    "%s %s %s",
                    request.method,
                    request.url.path,
                    status,
                    extra={
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                        "tenant": getattr(request.state, "tenant", None),
                    },
                )
        response.headers[REQUEST_ID_HEADER] = rid
        return response

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
                counts = await run_in_threadpool(rt.catalog.pending_job_counts)
            except StoreUnavailable:
                counts = {}  # the metrics still answer while the catalog is down
            for state, n in counts.items():
                QUEUE_DEPTH.labels(state.value).set(n)
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
