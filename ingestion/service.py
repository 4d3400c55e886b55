"""The one ingestion service: it registers documents and versions, and runs the steps that
index them. Celery (``ingestion.tasks``: a chord across workers) and this process
(:class:`InProcessExecutor`: evaluation, benchmarks) are two executors of the same steps.

Ingesting a version is four steps. ``prepare`` parses and chunks and records the chunks in
the catalog; then ``index_vectors`` (vector store) and ``index_graph`` (graph store) run in
parallel; ``finalize`` then switches the document's active version in one catalog transaction,
which is the moment readers see the new version, and removes what superseded versions left in
the stores.

Each step takes a job id, re-reads state from the catalog and exits early when the job already
finished, and every write is an upsert by deterministic id, so a redelivered task (worker
killed, ``acks_late``) changes nothing. Permanent failures fail the job with their cause
(naming the store); transient ones propagate to the executor, which retries.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from core.domain import Document, DocumentStatus, Job, JobKind, JobState, Version
from core.errors import (
    Conflict,
    GedragError,
    IngestionError,
    NotFound,
    StoreUnavailable,
    UnsupportedMediaType,
)
from core.metrics import INGEST_STAGE, JOBS
from ingestion.indexing import Indexer, Progress
from runtime import Runtime
from stores.catalog import NewVersion
from textmodels.embedding import MemoEmbedder

log = logging.getLogger(__name__)

# (stage, done, total) of a batch run: the CLI draws progress bars from it.
BatchProgress = Callable[[str, int, int], None]
EMBED_AHEAD_BATCH = 256


@dataclass(frozen=True)
class Incoming:
    """A checked file about to be registered: its bytes (a readable stream, read once) and
    what identifies them."""

    source: BinaryIO
    filename: str
    media_type: str
    sha256: str
    size_bytes: int

    def new_version(self) -> NewVersion:
        return NewVersion(
            sha256=self.sha256,
            size_bytes=self.size_bytes,
            media_type=self.media_type,
            filename=self.filename,
        )


@dataclass(frozen=True)
class Registered:
    """The outcome of registering a file: a new document or version with its job, or the
    document that already holds these bytes (``job`` is ``None``)."""

    document: Document
    job: Job | None

    @property
    def duplicate(self) -> bool:
        return self.job is None


class Executor(Protocol):
    """Runs a registered job's steps: on Celery workers (``ingestion.tasks.CeleryExecutor``)
    or in this process (:class:`InProcessExecutor`). ``submit`` raises
    :class:`StoreUnavailable` when the job cannot be queued (nothing ran)."""

    def submit(self, job: Job) -> None: ...

    def sync(self, tenant_id: str, document_id: str) -> None:
        """Copy a document's changed title, tags and metadata into the vector payloads."""
        ...


class IngestionService:
    """Registration of documents and versions, and the steps that index or delete them."""

    def __init__(self, rt: Runtime, indexer: Indexer | None = None) -> None:
        self.rt = rt
        self.indexer = indexer or Indexer(rt.settings, rt.models)

    # -- registration --------------------------------------------------------------------

    def register(
        self,
        tenant_id: str,
        collection: str,
        f: Incoming,
        *,
        title: str,
        tags: list[str],
        metadata: dict[str, object],
    ) -> Registered:
        """A new document for ``f``, or the collection's document with the same bytes."""
        existing = self.rt.catalog.documents.find_by_content(tenant_id, collection, f.sha256)
        if existing is not None:
            return Registered(existing, None)
        self.rt.blobs.put(tenant_id, f.sha256, f.source)
        doc, job = self.rt.catalog.documents.create(
            tenant_id,
            collection,
            title=title,
            tags=tags,
            metadata=metadata,
            version=f.new_version(),
        )
        return Registered(doc, job)

    def register_version(self, tenant_id: str, document_id: str, f: Incoming) -> Registered:
        """A new version of the document (the document itself when ``f`` is its current
        bytes); :class:`Conflict` when another document of the collection holds them."""
        doc = self.rt.catalog.documents.get(tenant_id, document_id)
        current = doc.current
        if current is not None and current.sha256 == f.sha256:
            return Registered(doc, None)
        other = self.rt.catalog.documents.find_by_content(tenant_id, doc.collection, f.sha256)
        if other is not None and other.id != doc.id:
            raise Conflict(
                f"identical content already exists in collection {doc.collection!r} "
                f"as document {other.id}"
            )
        self.rt.blobs.put(tenant_id, f.sha256, f.source)
        doc, job = self.rt.catalog.documents.add_version(tenant_id, document_id, f.new_version())
        return Registered(doc, job)

    def unregister(self, document_id: str, job_id: str) -> None:
        """Undo a registration whose job could not be queued: rows and exclusive originals."""
        for tenant_id, sha in self.rt.catalog.documents.exclusive_blobs(document_id):
            self.rt.blobs.delete(tenant_id, sha)
        self.rt.catalog.documents.purge(document_id)
        self.rt.catalog.jobs.delete(job_id)

    # -- job state -----------------------------------------------------------------------

    def fail_job(self, job_id: str, cause: str) -> None:
        """Mark the job failed with a readable cause (kept when a parallel step failed too)."""
        catalog = self.rt.catalog
        job = catalog.jobs.load(job_id)
        if job.state == JobState.FAILED and job.error and cause not in job.error:
            cause = f"{job.error}; {cause}"
        if job.state != JobState.FAILED:
            JOBS.labels(job.kind, "failed").inc()
        job = catalog.jobs.update(job_id, state=JobState.FAILED, error=cause)
        if job.version_id is not None:
            # NotFound: the document was deleted meanwhile, nothing left to mark.
            with contextlib.suppress(NotFound):
                catalog.versions.set_status(job.version_id, DocumentStatus.FAILED)
        log.warning("job failed", extra={"job_id": job_id, "cause": cause})

    def note_retry(self, job_id: str, cause: str) -> None:
        """Show why a running job waits; a failed job keeps its cause (cleanup retries after)."""
        if not self.rt.catalog.jobs.load(job_id).state.finished:
            self.rt.catalog.jobs.update(job_id, error=f"retrying after: {cause}")

    def _progress(self, job_id: str) -> Progress:
        def report(stage: str, fraction: float) -> None:
            self.rt.catalog.jobs.update(job_id, stage=stage, progress=fraction)

        return report

    def _load(self, job_id: str) -> tuple[Job, Version, Document] | None:
        """The job with its version and document, or ``None`` when there is nothing to do."""
        job = self.rt.catalog.jobs.load(job_id)
        if job.state.finished or job.version_id is None:
            return None
        try:
            version = self.rt.catalog.versions.load(job.version_id)
            doc = self.rt.catalog.documents.get(job.tenant_id, version.document_id)
        except NotFound:
            self.fail_job(job_id, "the document was deleted before it could be indexed")
            return None
        return job, version, doc

    # -- the steps -----------------------------------------------------------------------

    def prepare(self, job_id: str) -> bool:
        """Parse and chunk; True when the store steps should run."""
        loaded = self._load(job_id)
        if loaded is None:
            return False
        job, version, _ = loaded
        catalog = self.rt.catalog
        catalog.jobs.update(
            job_id, state=JobState.RUNNING, stage="parsing", progress=0.05, new_attempt=True
        )
        catalog.versions.set_status(version.id, DocumentStatus.PROCESSING)
        data = self.rt.blobs.read(job.tenant_id, version.sha256)
        try:
            chunks = self.indexer.prepare(data, version, job.tenant_id, self._progress(job_id))
        except (IngestionError, UnsupportedMediaType) as exc:
            self.fail_job(job_id, exc.detail)
            return False
        catalog.chunks.replace(version.id, chunks)
        catalog.jobs.update(job_id, stage="indexing", progress=0.4)
        log.info("version chunked", extra={"job_id": job_id, "chunks": len(chunks)})
        return True

    def index_vectors(self, job_id: str) -> None:
        """Embed the version's chunks and upsert dense, sentence and sparse vectors."""
        loaded = self._load(job_id)
        if loaded is None:
            return
        _, version, doc = loaded
        chunks = self.rt.catalog.chunks.of_version(version.id)
        with INGEST_STAGE.labels("embed").time():
            points = self.indexer.vector_points(chunks, doc, version, self._progress(job_id))
        with INGEST_STAGE.labels("vector_write").time():
            self.rt.vectors.ensure_collection(self.indexer.models.embedder.dim)
            self.rt.vectors.upsert(points)

    def index_graph(self, job_id: str) -> None:
        """Extract entities and write the version's chunks, mentions and relations."""
        loaded = self._load(job_id)
        if loaded is None:
            return
        _, version, doc = loaded
        chunks = self.rt.catalog.chunks.of_version(version.id)
        with INGEST_STAGE.labels("entities").time():
            graph = self.indexer.version_graph(chunks, doc, version)
        with INGEST_STAGE.labels("graph_write").time():
            self.rt.graph.upsert_version(graph)
        self.rt.catalog.versions.set_entity_count(version.id, len(graph.entities))

    def finalize(self, job_id: str) -> None:
        """Switch readers to the version (one catalog transaction), then clean superseded
        data."""
        catalog = self.rt.catalog
        job = catalog.jobs.load(job_id)
        if job.version_id is None or job.state == JobState.SUCCEEDED:
            return
        try:
            version = catalog.versions.load(job.version_id)
        except NotFound:
            return  # deleted meanwhile: the delete job removes everything
        if job.state == JobState.FAILED:
            # A store step failed: the version never became active; remove its partial writes.
            self._drop_version(job.tenant_id, version)
            return
        chunk_ids = [c.id for c in catalog.chunks.of_version(version.id)]
        self._check_complete(job.tenant_id, version, chunk_ids)
        doc = catalog.versions.activate(version.id, chunk_count=len(chunk_ids))
        if doc is None:
            return
        for old in doc.versions:
            if doc.active_version is not None and old.number < doc.active_version:
                self._drop_version(job.tenant_id, old)
        if doc.active_version != version.number:  # a newer version finished first
            self._drop_version(job.tenant_id, version)
        catalog.jobs.update(job_id, state=JobState.SUCCEEDED, stage="done", progress=1.0, error="")
        JOBS.labels(job.kind, "succeeded").inc()
        log.info("version active", extra={"job_id": job_id, "version": version.number})

    def _check_complete(self, tenant_id: str, version: Version, chunk_ids: list[str]) -> None:
        """Both stores hold every chunk, or a retry comes later: a redelivered header task can
        make the chord fire before its sibling finished, and readers must never see half a
        version. Vectors are checked by id (no filtered scan)."""
        missing = len(self.rt.vectors.missing(chunk_ids))
        graph = self.rt.graph.counts(tenant_id, version.document_id, version.id).chunks
        if missing or graph != len(chunk_ids):
            raise StoreUnavailable(
                f"stores incomplete ({missing} of {len(chunk_ids)} vectors missing, "
                f"{graph} graph chunks)"
            )

    def _drop_version(self, tenant_id: str, version: Version) -> None:
        # By id from the catalog's chunk records: no scan of the collection.
        self.rt.vectors.delete_ids([c.id for c in self.rt.catalog.chunks.of_version(version.id)])
        self.rt.graph.delete_version(tenant_id, version.document_id, version.id)
        self.rt.catalog.chunks.drop(version.id)

    def delete(self, job_id: str) -> None:
        """Remove a document from every store: indexes and originals first, catalog rows last,
        so a retry after a crash still finds the rows that say what to remove."""
        catalog = self.rt.catalog
        job = catalog.jobs.load(job_id)
        if job.state.finished:
            return
        catalog.jobs.update(
            job_id, state=JobState.RUNNING, stage="removing", progress=0.1, new_attempt=True
        )
        self.rt.vectors.delete(job.tenant_id, job.document_id)
        self.rt.graph.delete_document(job.tenant_id, job.document_id)
        catalog.jobs.update(job_id, progress=0.6)
        for tenant_id, sha in catalog.documents.exclusive_blobs(job.document_id):
            self.rt.blobs.delete(tenant_id, sha)
        catalog.documents.purge(job.document_id)
        catalog.jobs.update(job_id, state=JobState.SUCCEEDED, stage="done", progress=1.0)
        JOBS.labels(job.kind, "succeeded").inc()
        log.info("document deleted", extra={"job_id": job_id, "document_id": job.document_id})

    def sync(self, tenant_id: str, document_id: str) -> None:
        """Copy changed title, tags and metadata into the vector payloads (filters read
        them)."""
        try:
            doc = self.rt.catalog.documents.get(tenant_id, document_id)
        except NotFound:
            return
        self.rt.vectors.set_payload(
            tenant_id,
            document_id,
            {"title": doc.title, "tags": doc.tags, "metadata": doc.metadata},
        )


class InProcessExecutor:
    """Runs the steps in the calling thread (evaluation, benchmarks, tools): the same steps as
    the Celery executor, one after the other. A transient store error propagates to the
    caller; a permanent one fails the job with its cause."""

    def __init__(self, service: IngestionService) -> None:
        self.service = service

    def submit(self, job: Job) -> None:
        self.run_all([job])

    def run_all(self, jobs: Sequence[Job], progress: BatchProgress | None = None) -> None:
        """Every job's steps, stage by stage: parse and chunk them all, embed all their chunks
        in large model calls (when the embedder keeps a memo: ``MemoEmbedder``), then index
        and activate each. Per-document calls of ~10 chunks run at half the speed of batches
        of 64+."""
        s = self.service
        report = progress or (lambda _stage, _done, _total: None)
        ingests = [j for j in jobs if j.kind == JobKind.INGEST]
        for j in jobs:
            if j.kind == JobKind.DELETE:
                s.delete(j.id)
        prepared = []
        for i, j in enumerate(ingests):
            if s.prepare(j.id):
                prepared.append(j)
            report("parse + chunk", i + 1, len(ingests))
        self._embed_ahead(prepared, report)
        for i, j in enumerate(prepared):
            for what, step in (("vector store", s.index_vectors), ("graph store", s.index_graph)):
                try:
                    step(j.id)
                except StoreUnavailable:
                    raise
                except GedragError as exc:
                    s.fail_job(j.id, f"{what}: {exc.detail}")
            s.finalize(j.id)
            report("index", i + 1, len(prepared))

    def _embed_ahead(self, jobs: Sequence[Job], report: BatchProgress) -> None:
        embedder = self.service.indexer.models.embedder
        if not isinstance(embedder, MemoEmbedder):
            return
        texts = [
            c.text
            for j in jobs
            if j.version_id is not None
            for c in self.service.rt.catalog.chunks.of_version(j.version_id)
        ]
        for start in range(0, len(texts), EMBED_AHEAD_BATCH):
            batch = texts[start : start + EMBED_AHEAD_BATCH]
            embedder.embed_spans(batch, [self.service.indexer.spans_of(t) for t in batch])
            report("embed chunks", min(start + EMBED_AHEAD_BATCH, len(texts)), len(texts))

    def sync(self, tenant_id: str, document_id: str) -> None:
        self.service.sync(tenant_id, document_id)
