"""Celery tasks: thin wrappers that take ids, call the pipeline, and retry transient errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from core.errors import TransientError
from ingestion import pipeline

if TYPE_CHECKING:
    from ingestion.celery_app import GedragCelery

log = logging.getLogger(__name__)

INGEST = "gedrag.ingest_version"
DELETE = "gedrag.delete_document"


def register(app: GedragCelery) -> None:
    """Attach gedrag's tasks to ``app`` (one Celery app per settings, so tests can have many)."""
    broker = app.settings.broker

    def run(task: Any, step: Any, job_id: str) -> None:
        runtime = app.runtime
        try:
            step(runtime, job_id)
        except TransientError as exc:
            if task.request.retries >= broker.max_retries:
                pipeline.fail_job(
                    runtime,
                    job_id,
                    f"gave up after {task.request.retries + 1} attempts: {exc.detail}",
                )
                return
            delay = min(2**task.request.retries, broker.retry_backoff_max_s)
            log.warning("transient failure, retrying", extra={"job_id": job_id, "delay_s": delay})
            pipeline.note_retry(runtime, job_id, exc.detail)
            raise task.retry(exc=exc, countdown=delay) from exc

    # shared=False: Celery's default adds every task to every app in the process, which would
    # bind one app's task name to another app's runtime (tests run several apps side by side).
    @app.task(name=INGEST, bind=True, max_retries=None, shared=False)  # type: ignore[untyped-decorator]
    def ingest_version(self: Any, *, job_id: str) -> None:
        run(self, pipeline.ingest_version, job_id)

    @app.task(name=DELETE, bind=True, max_retries=None, shared=False)  # type: ignore[untyped-decorator]
    def delete_document(self: Any, *, job_id: str) -> None:
        run(self, pipeline.delete_document, job_id)
