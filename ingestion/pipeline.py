"""The ingestion and deletion steps, as plain functions over a :class:`Runtime`.

Ingesting a version is four steps. ``prepare_version`` parses and chunks and records the chunks
in the catalog; then ``index_vectors`` (Qdrant) and ``index_graph`` (graph store) run in
parallel as a chord's header; ``finalize_version`` then switches the document's active version
in one catalog transaction, which is the moment readers see the new version, and removes what
superseded versions left in the stores.

Celery tasks call these with a job id; each step re-reads state from the catalog and exits early
when the job already finished, and every write is an upsert by deterministic id, so a
redelivered task (worker killed, ``acks_late``) changes nothing. Permanent failures fail the job
with their cause (naming the store); transient ones propagate to the task, which retries.
"""

from __future__ import annotations

import contextlib
import logging

from core.domain import Document, DocumentStatus, Job, JobState, Version
from core.errors import IngestionError, NotFound, StoreUnavailable, UnsupportedMediaType
from core.metrics import INGEST_STAGE, JOBS
from ingestion.indexing import Progress
from ingestion.runtime import Runtime

log = logging.getLogger(__name__)


def fail_job(rt: Runtime, job_id: str, cause: str) -> None:
    """Mark the job failed with a readable cause (kept when a parallel step failed too)."""
    job = rt.catalog.load_job(job_id)
    if job.state == JobState.FAILED and job.error and cause not in job.error:
        cause = f"{job.error}; {cause}"
    if job.state != JobState.FAILED:
        JOBS.labels(job.kind, "failed").inc()
    job = rt.catalog.update_job(job_id, state=JobState.FAILED, error=cause)
    if job.version_id is not None:
        # NotFound: the document was deleted meanwhile, nothing left to mark.
        with contextlib.suppress(NotFound):
            rt.catalog.set_version_status(job.version_id, DocumentStatus.FAILED)
    log.warning("job failed", extra={"job_id": job_id, "cause": cause})


def note_retry(rt: Runtime, job_id: str, cause: str) -> None:
    """Show why a running job waits; a failed job keeps its cause (cleanup retries after)."""
    if not rt.catalog.load_job(job_id).state.finished:
        rt.catalog.update_job(job_id, error=f"retrying after: {cause}")


def _progress(rt: Runtime, job_id: str) -> Progress:
    def report(stage: str, fraction: float) -> None:
        rt.catalog.update_job(job_id, stage=stage, progress=fraction)

    return report


def _load(rt: Runtime, job_id: str) -> tuple[Job, Version, Document] | None:
    """The job with its version and document, or ``None`` when there is nothing to do."""
    job = rt.catalog.load_job(job_id)
    if job.state.finished or job.version_id is None:
        return None
    try:
        version = rt.catalog.load_version(job.version_id)
        doc = rt.catalog.get_document(job.tenant_id, version.document_id)
    except NotFound:
        fail_job(rt, job_id, "the document was deleted before it could be indexed")
        return None
    return job, version, doc


def prepare_version(rt: Runtime, job_id: str) -> bool:
    """Parse and chunk; True when the store steps should run."""
    loaded = _load(rt, job_id)
    if loaded is None:
        return False
    job, version, _ = loaded
    rt.catalog.update_job(
        job_id, state=JobState.RUNNING, stage="parsing", progress=0.05, new_attempt=True
    )
    rt.catalog.set_version_status(version.id, DocumentStatus.PROCESSING)
    data = rt.blobs.read(job.tenant_id, version.sha256)
    try:
        chunks = rt.indexer.prepare(data, version, job.tenant_id, _progress(rt, job_id))
    except (IngestionError, UnsupportedMediaType) as exc:
        fail_job(rt, job_id, exc.detail)
        return False
    rt.catalog.replace_chunks(version.id, chunks)
    rt.catalog.update_job(job_id, stage="indexing", progress=0.4)
    log.info("version chunked", extra={"job_id": job_id, "chunks": len(chunks)})
    return True


def index_vectors(rt: Runtime, job_id: str) -> None:
    """Embed the version's chunks and upsert dense + sparse vectors into Qdrant."""
    loaded = _load(rt, job_id)
    if loaded is None:
        return
    _, version, doc = loaded
    chunks = rt.catalog.version_chunks(version.id)
    with INGEST_STAGE.labels("embed").time():
        points = rt.indexer.vector_points(chunks, doc, version, _progress(rt, job_id))
    with INGEST_STAGE.labels("vector_write").time():
        rt.vectors.ensure_collection(rt.indexer.embedder.dim)
        rt.vectors.upsert(points)


def index_graph(rt: Runtime, job_id: str) -> None:
    """Extract entities and write the version's chunks, mentions and relations."""
    loaded = _load(rt, job_id)
    if loaded is None:
        return
    _, version, doc = loaded
    with INGEST_STAGE.labels("entities").time():
        graph = rt.indexer.version_graph(rt.catalog.version_chunks(version.id), doc, version)
    with INGEST_STAGE.labels("graph_write").time():
        rt.graph.upsert_version(graph)
    rt.catalog.set_entity_count(version.id, len(graph.entities))


def finalize_version(rt: Runtime, job_id: str) -> None:
    """Switch readers to the version (one catalog transaction), then clean superseded data."""
    job = rt.catalog.load_job(job_id)
    if job.version_id is None or job.state == JobState.SUCCEEDED:
        return
    try:
        version = rt.catalog.load_version(job.version_id)
    except NotFound:
        return  # deleted meanwhile: the delete job removes everything
    if job.state == JobState.FAILED:
        # A store step failed: the version never became active; remove its partial writes.
        _drop_version(rt, job.tenant_id, version)
        return
    chunk_ids = [c.id for c in rt.catalog.version_chunks(version.id)]
    _check_complete(rt, job.tenant_id, version, chunk_ids)
    doc = rt.catalog.activate_version(version.id, chunk_count=len(chunk_ids))
    if doc is None:
        return
    for old in doc.versions:
        if doc.active_version is not None and old.number < doc.active_version:
            _drop_version(rt, job.tenant_id, old)
    if doc.active_version != version.number:  # a newer version finished first
        _drop_version(rt, job.tenant_id, version)
    rt.catalog.update_job(job_id, state=JobState.SUCCEEDED, stage="done", progress=1.0, error="")
    JOBS.labels(job.kind, "succeeded").inc()
    log.info("version active", extra={"job_id": job_id, "version": version.number})


def _check_complete(rt: Runtime, tenant_id: str, version: Version, chunk_ids: list[str]) -> None:
    """Both stores hold every chunk, or a retry comes later: a redelivered header task can make
    the chord fire before its sibling finished, and readers must never see half a version.
    Vectors are checked by id (a filtered count scans every point in local mode)."""
    missing = len(rt.vectors.missing(chunk_ids))
    graph = rt.graph.counts(tenant_id, version.document_id, version.id).chunks
    if missing or graph != len(chunk_ids):
        raise StoreUnavailable(
            f"stores incomplete ({missing} of {len(chunk_ids)} vectors missing, "
            f"{graph} graph chunks)"
        )


def _drop_version(rt: Runtime, tenant_id: str, version: Version) -> None:
    # By id from the catalog's chunk records: no scan of the collection.
    rt.vectors.delete_ids([c.id for c in rt.catalog.version_chunks(version.id)])
    rt.graph.delete_version(tenant_id, version.document_id, version.id)
    rt.catalog.drop_chunks(version.id)


def delete_document(rt: Runtime, job_id: str) -> None:
    """Remove a document from every store: indexes and originals first, catalog rows last, so
    a retry after a crash still finds the rows that say what to remove."""
    job = rt.catalog.load_job(job_id)
    if job.state.finished:
        return
    rt.catalog.update_job(
        job_id, state=JobState.RUNNING, stage="removing", progress=0.1, new_attempt=True
    )
    rt.vectors.delete(job.tenant_id, job.document_id)
    rt.graph.delete_document(job.tenant_id, job.document_id)
    rt.catalog.update_job(job_id, progress=0.6)
    for tenant_id, sha in rt.catalog.exclusive_blobs(job.document_id):
        rt.blobs.delete(tenant_id, sha)
    rt.catalog.purge_document(job.document_id)
    rt.catalog.update_job(job_id, state=JobState.SUCCEEDED, stage="done", progress=1.0)
    JOBS.labels(job.kind, "succeeded").inc()
    log.info("document deleted", extra={"job_id": job_id, "document_id": job.document_id})


def sync_document(rt: Runtime, tenant_id: str, document_id: str) -> None:
    """Copy changed title, tags and metadata into the vector payloads (filters read them)."""
    try:
        doc = rt.catalog.get_document(tenant_id, document_id)
    except NotFound:
        return
    rt.vectors.set_payload(
        tenant_id, document_id, {"title": doc.title, "tags": doc.tags, "metadata": doc.metadata}
    )
