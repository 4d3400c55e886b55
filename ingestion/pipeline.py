"""The ingestion and deletion steps, as plain functions over a :class:`Runtime`.

Celery tasks call these with a job id; they re-read state from the catalog and exit early when
the job already finished, so a redelivered task (worker killed, ``acks_late``) changes nothing.
Permanent failures (:class:`IngestionError`) fail the job with its cause; transient ones
propagate to the task, which retries with backoff.
"""

from __future__ import annotations

import contextlib
import logging

from core.domain import DocumentStatus, JobState
from core.errors import IngestionError, NotFound, UnsupportedMediaType
from ingestion.indexing import Progress
from ingestion.runtime import Runtime

log = logging.getLogger(__name__)


def fail_job(rt: Runtime, job_id: str, cause: str) -> None:
    """Mark the job failed with a readable cause, and its version failed too."""
    job = rt.catalog.update_job(job_id, state=JobState.FAILED, error=cause)
    if job.version_id is not None:
        # NotFound: the document was deleted meanwhile, nothing left to mark.
        with contextlib.suppress(NotFound):
            rt.catalog.set_version_status(job.version_id, DocumentStatus.FAILED)
    log.warning("job failed", extra={"job_id": job_id, "cause": cause})


def note_retry(rt: Runtime, job_id: str, cause: str) -> None:
    rt.catalog.update_job(job_id, error=f"retrying after: {cause}")


def _progress(rt: Runtime, job_id: str) -> Progress:
    def report(stage: str, fraction: float) -> None:
        rt.catalog.update_job(job_id, stage=stage, progress=fraction)

    return report


def ingest_version(rt: Runtime, job_id: str) -> None:
    """Parse and chunk one version, then mark it ready with its counts."""
    job = rt.catalog.load_job(job_id)
    if JobState(job.state).finished or job.version_id is None:
        return
    try:
        version = rt.catalog.load_version(job.version_id)
    except NotFound:
        fail_job(rt, job_id, "the document was deleted before it could be ingested")
        return
    rt.catalog.update_job(
        job_id, state=JobState.RUNNING, stage="parsing", progress=0.05, new_attempt=True
    )
    rt.catalog.set_version_status(version.id, DocumentStatus.PROCESSING)
    data = rt.blobs.read(job.tenant_id, version.sha256)
    try:
        chunks = rt.indexer.prepare(data, version, progress=_progress(rt, job_id))
    except (IngestionError, UnsupportedMediaType) as exc:
        fail_job(rt, job_id, exc.detail)
        return
    rt.catalog.set_version_status(version.id, DocumentStatus.READY, chunk_count=len(chunks))
    rt.catalog.update_job(job_id, state=JobState.SUCCEEDED, stage="done", progress=1.0, error="")
    log.info("version ingested", extra={"job_id": job_id, "chunks": len(chunks)})


def delete_document(rt: Runtime, job_id: str) -> None:
    """Remove a document from every store: originals first, catalog rows last, so a retry after
    a crash still finds the rows that say what to remove."""
    job = rt.catalog.load_job(job_id)
    if JobState(job.state).finished:
        return
    rt.catalog.update_job(
        job_id, state=JobState.RUNNING, stage="removing", progress=0.1, new_attempt=True
    )
    for tenant_id, sha in rt.catalog.exclusive_blobs(job.document_id):
        rt.blobs.delete(tenant_id, sha)
    rt.catalog.purge_document(job.document_id)
    rt.catalog.update_job(job_id, state=JobState.SUCCEEDED, stage="done", progress=1.0)
    log.info("document deleted", extra={"job_id": job_id, "document_id": job.document_id})
