"""The FastAPI application: GED API under /v1, OpenAPI docs at /docs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from core.settings import Settings, get_settings
from ingestion.celery_app import GedragCelery, start_embedded_worker
from ingestion.runtime import Runtime
from serving import api, errors, eval_api, qa_api
from serving.documents import DocumentService

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

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
