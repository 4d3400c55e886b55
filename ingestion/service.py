"""The one ingestion service: it registers documents and versions, and runs the steps that
index them. Celery (``ingestion.tasks``) and this process (:class:`InProcessExecutor`:
evaluation, benchmarks) are two executors of the same steps.

Ingesting a version is two stages (progressive indexing, issue #22). :meth:`first_stage`:
``prepare`` parses and chunks and records the chunks in the catalog; ``index_terms`` stores
them in the vector store with their sparse vectors only, ``index_graph`` writes the graph;
``publish`` then switches the document's active version in one catalog transaction (status
``searchable``: readers find it by its words from that moment) and removes what superseded
versions left in the stores. Then ``index_vectors`` adds the dense and sentence vectors to the
same points and ``finalize`` marks the version ``ready`` and sorts it.

Each step takes a job id, re-reads state from the catalog and exits early when the job already
finished, and every write is an upsert by deterministic id, so a redelivered task (worker
killed, ``acks_late``) changes nothing. Permanent failures fail the job with their cause
(naming the store); transient ones propagate to the executor, which retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from core.domain import HIDDEN_STATUSES, Document, DocumentStatus, Job, JobKind, JobState, Version
from core.errors import (
    Conflict,
    GedragError,
    IngestionError,
    Interrupted,
    NotFound,
    StoreUnavailable,
    TransientError,
    UnsupportedMediaType,
)
from core.metrics import INGEST_STAGE, JOBS
from ingestion.access import AccessService
from ingestion.indexing import Indexer, Progress
from ingestion.limits import check_upload, chunk_room
from ingestion.purge import Purger
from runtime import Runtime
from sorting.service import SortingService
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

    @property
    def title(self) -> str:
        """The title a document gets from its file name until it is given one."""
        return title_from_filename(self.filename)

    def new_version(self) -> NewVersion:
        return NewVersion(
            sha256=self.sha256,
            size_bytes=self.size_bytes,
            media_type=self.media_type,
            filename=self.filename,
        )


def title_from_filename(filename: str) -> str:
    """``memo`` for ``memo.pdf``: the title of a document nobody titled (at most 300 chars)."""
    stem, _ = os.path.splitext(filename)
    return (stem or filename)[:300]


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
        self.sorting = SortingService(rt)

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
        """A new document for ``f``; the collection's document with the same bytes when they
        are its current version; a new version of it restoring them when they are an older
        version's (whose chunks are no longer searchable)."""
        existing = self.rt.catalog.documents.find_by_content(tenant_id, collection, f.sha256)
        if existing is not None:
            current = existing.current
            if current is None or current.sha256 == f.sha256:
                return Registered(existing, None)
            return self.register_version(tenant_id, existing.id, f)
        # Before the original is written: a collection name that breaks the rule stores nothing.
        self.rt.catalog.collections.ensure(tenant_id, collection)
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

    def register_version(
        self, tenant_id: str, document_id: str, f: Incoming, *, actor: str = "api"
    ) -> Registered:
        """A new version of the document (the document itself when ``f`` is its current
        bytes); :class:`Conflict` when another document of the collection holds them."""
        doc = self.rt.catalog.documents.get(tenant_id, document_id)
        current = doc.current
        if current is not None and current.sha256 == f.sha256:
            return Registered(doc, None)
        if doc.status in HIDDEN_STATUSES:  # refused before its bytes are stored
            raise Conflict(f"document {document_id} is {doc.status.value}: no new version")
        # A legal hold freezes the document's versions (409 naming the hold, audited).
        self.rt.catalog.records.refuse_if_held(
            tenant_id, document_id, action="new version", actor=actor
        )
        other = self.rt.catalog.documents.find_by_content(tenant_id, doc.collection, f.sha256)
        if other is not None and other.id != doc.id:
            raise Conflict(
                f"identical content already exists in collection {doc.collection!r} "
                f"as document {other.id}"
            )
        self.rt.blobs.put(tenant_id, f.sha256, f.source)
        doc, job = self.rt.catalog.documents.add_version(tenant_id, document_id, f.new_version())
        return Registered(doc, job)

    def check_quota(self, tenant_id: str, sizes: list[int]) -> None:
        """Refuse uploads beyond the tenant's daily quotas (GEDRAG_LIMITS__TENANT_*): 429 with
        when to retry, 413 for more bytes than a whole day allows."""
        usage = self.rt.catalog.versions.usage_since
        check_upload(usage, self.rt.settings.limits, tenant_id, sizes)

    def close(self) -> None:
        """Stop the steps running in this process (SIGTERM): parse children are killed and
        deadlines raise :class:`Interrupted`, whose jobs :meth:`requeue` puts back."""
        self.indexer.close()

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
        # The document first: whoever sees the job failed (clients poll it) sees the document
        # failed too.
        if job.version_id is not None and not self._published(job.version_id):
            # NotFound: the document was deleted meanwhile, nothing left to mark.
            with contextlib.suppress(NotFound):
                catalog.versions.set_status(job.version_id, DocumentStatus.FAILED)
        elif job.version_id is not None:
            # Its embedding failed after it was published: it stays searchable by its terms,
            # entities and graph; `gedrag migrate repair` embeds it (verify lists it).
            cause = f"{cause} (the version stays searchable by its words, without its meaning)"
        catalog.jobs.update(job_id, state=JobState.FAILED, error=cause)
        log.warning("job failed", extra={"job_id": job_id, "cause": cause})

    def requeue(self, job_id: str) -> None:
        """Put back a job whose step was interrupted by a shutdown: queued again, not failed
        (the embedded worker queues it again at its next start; Redis delivers it again)."""
        job = self.rt.catalog.jobs.load(job_id)
        if job.state.finished:
            return
        self.rt.catalog.jobs.update(job_id, state=JobState.QUEUED, stage="requeued", progress=0)
        if job.version_id is not None and not self._published(job.version_id):
            with contextlib.suppress(NotFound):
                self.rt.catalog.versions.set_status(job.version_id, DocumentStatus.QUEUED)
        log.info("job requeued: the worker is stopping", extra={"job_id": job_id})

    def is_published(self, job_id: str) -> bool:
        """Whether the job's version is already searchable, its embedding to come (a job
        requeued between its two stages resumes at the second)."""
        job = self.rt.catalog.jobs.load(job_id)
        return (
            not job.state.finished
            and job.version_id is not None
            and self._published(job.version_id)
        )

    def _published(self, version_id: str) -> bool:
        """Whether readers already see the version (searchable, its embedding to come)."""
        try:
            return self.rt.catalog.versions.load(version_id).status == DocumentStatus.SEARCHABLE
        except NotFound:
            return False

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

    def first_stage(self, job_id: str) -> bool:
        """Parse and chunk, write the terms and the graph, publish: what makes a version
        searchable, in one step (no queue hops between them, so a document never waits behind
        the other uploads' parsing to be published). True when its embedding should follow.

        A store's permanent failure fails the job naming that store (the other writes still
        run, then publish removes them all); a transient one propagates, named, to be retried."""
        if not self._named("parsing", self.prepare, job_id):
            return False
        self._named("vector store (Qdrant)", self.index_terms, job_id)
        self._named("graph store", self.index_graph, job_id)
        return bool(self._named("activation", self.publish, job_id))

    def discard_failed(self, job_id: str) -> None:
        """Remove what a failed first stage wrote (its last retry ran out): a version readers
        never saw leaves no chunk anywhere. Anything else is left as it is."""
        job = self.rt.catalog.jobs.load(job_id)
        if job.state != JobState.FAILED or job.version_id is None:
            return
        try:
            version = self.rt.catalog.versions.load(job.version_id)
        except NotFound:
            return
        if version.status == DocumentStatus.FAILED:
            self._drop_version(job.tenant_id, version)

    def _named(self, what: str, step: Callable[[str], bool | None], job_id: str) -> bool | None:
        try:
            return step(job_id)
        except Interrupted:
            raise
        except TransientError as exc:
            raise type(exc)(f"{what}: {exc.detail}") from exc
        except GedragError as exc:
            self.fail_job(job_id, f"{what}: {exc.detail}")
            return None

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
        limits = self.rt.settings.limits
        room = chunk_room(catalog.versions.usage_since, limits, job.tenant_id)
        if room == 0:
            self.fail_job(
                job_id,
                f"the tenant's daily indexing quota is used up ({limits.tenant_chunks_per_day} "
                "chunks in 24 h, GEDRAG_LIMITS__TENANT_CHUNKS_PER_DAY)",
            )
            return False
        try:
            prepared = self.indexer.parse_and_chunk(
                data, version, job.tenant_id, self._progress(job_id), chunk_room=room
            )
        except (IngestionError, UnsupportedMediaType) as exc:
            self.fail_job(job_id, exc.detail)
            return False
        chunks = prepared.chunks
        if prepared.title is not None:
            self._adopt_title(job.tenant_id, version.document_id, prepared.title)
        catalog.chunks.replace(version.id, chunks)
        catalog.jobs.update(job_id, stage="indexing", progress=0.4, warnings=prepared.warnings)
        log.info("version chunked", extra={"job_id": job_id, "chunks": len(chunks)})
        return True

    def _adopt_title(self, tenant_id: str, document_id: str, title: str) -> None:
        """Give the document the title it gives itself, unless someone titled it: a title
        still equal to one of its file names was made from the name, not chosen."""
        with contextlib.suppress(NotFound, Conflict):  # deleted or being deleted meanwhile
            doc = self.rt.catalog.documents.get(tenant_id, document_id)
            if doc.title != title and doc.title in {
                title_from_filename(v.filename) for v in doc.versions
            }:
                self.rt.catalog.documents.update(tenant_id, document_id, title=title)

    def index_terms(self, job_id: str) -> None:
        """Store the version's chunks with their sparse vectors and payload, before any
        embedding (progressive indexing): with the graph, what makes it searchable."""
        loaded = self._load(job_id)
        if loaded is None:
            return
        _, version, doc = loaded
        chunks = self.rt.catalog.chunks.of_version(version.id)
        if self.rt.vectors.dim() is None:  # the first document: the collection's size
            self._load_model(job_id)
            self.rt.vectors.ensure_collection(self.indexer.models.embedder.dim)
        # Only chunks with no point yet: a redelivered step must not replace a chunk's
        # embedded point by its terms-only one (same id, same text).
        absent = self.rt.vectors.missing([c.id for c in chunks])
        with INGEST_STAGE.labels("terms").time():
            points = self.indexer.term_points([c for c in chunks if c.id in absent], doc, version)
        with INGEST_STAGE.labels("vector_write").time():
            self.rt.vectors.upsert(points)

    def _load_model(self, job_id: str, stage: str = "loading model") -> None:
        models = self.indexer.models
        if not models.loaded:
            # The API starts loading the model at start, in the background (~7 s, ~30 s on a
            # busy machine); until it is in memory the job says what it waits for.
            self.rt.catalog.jobs.update(job_id, stage=stage)
            models.load()

    def index_vectors(self, job_id: str) -> None:
        """Embed the version's chunks and upsert dense, sentence and sparse vectors over the
        points :meth:`index_terms` stored (same ids)."""
        loaded = self._load(job_id)
        if loaded is None:
            return
        _, version, doc = loaded
        self._load_model(job_id, "embedding")  # searchable already: waiting to be embedded
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

    def publish(self, job_id: str) -> bool:
        """Switch readers to the version as soon as it is searchable by its terms, entities
        and graph (one catalog transaction: status ``searchable``), and remove what superseded
        versions left in the stores. True when its embedding should follow."""
        catalog = self.rt.catalog
        job = catalog.jobs.load(job_id)
        if job.version_id is None or (job.state.finished and job.state != JobState.FAILED):
            return False
        try:
            version = catalog.versions.load(job.version_id)
        except NotFound:
            return False  # deleted meanwhile: the delete job removes everything
        if job.state == JobState.FAILED:
            # A store step failed: the version never became active; remove its partial writes.
            self._drop_version(job.tenant_id, version)
            return False
        chunk_ids = [c.id for c in catalog.chunks.of_version(version.id)]
        self._check_complete(job.tenant_id, version, chunk_ids)
        # The stores' copies of who may read it, before anyone can (issue #19).
        AccessService(self.rt).sync(job.tenant_id, [version.document_id])
        doc = catalog.versions.activate(
            version.id, chunk_count=len(chunk_ids), status=DocumentStatus.SEARCHABLE
        )
        if doc is None:
            return False
        self._drop_superseded(job.tenant_id, doc)
        if doc.active_version != version.number:  # a newer version was published first
            self._drop_version(job.tenant_id, version)
            self._succeed(job, version, "superseded")
            return False
        catalog.jobs.update(job_id, stage="searchable", progress=0.5)
        log.info("version searchable", extra={"job_id": job_id, "version": version.number})
        return True

    def finalize(self, job_id: str) -> None:
        """The version's embedding is stored: it is ``ready``; then sort it."""
        catalog = self.rt.catalog
        job = catalog.jobs.load(job_id)
        if job.version_id is None or job.state == JobState.SUCCEEDED:
            return
        try:
            version = catalog.versions.load(job.version_id)
            doc = catalog.documents.get(job.tenant_id, version.document_id)
        except NotFound:
            return  # deleted meanwhile: the delete job removes everything
        active = doc.active_version == version.number
        if job.state == JobState.FAILED:
            if not active:  # never published, or superseded meanwhile: nothing to keep
                self._drop_version(job.tenant_id, version)
            # Published: it stays searchable by its terms (fail_job kept its status).
            return
        if not active:  # a newer version was published while this one was embedded
            self._drop_version(job.tenant_id, version)
            self._succeed(job, version, "superseded")
            return
        catalog.versions.set_status(version.id, DocumentStatus.READY)
        self._succeed(job, version, "done")
        self._sort(job.tenant_id, version)

    def _succeed(self, job: Job, version: Version, stage: str) -> None:
        self.rt.catalog.jobs.update(
            job.id, state=JobState.SUCCEEDED, stage=stage, progress=1.0, error=""
        )
        JOBS.labels(job.kind, "succeeded").inc()
        log.info("version indexed", extra={"job_id": job.id, "version": version.number})

    def _drop_superseded(self, tenant_id: str, doc: Document) -> None:
        for old in doc.versions:
            if doc.active_version is not None and old.number < doc.active_version:
                self._drop_version(tenant_id, old)

    def _sort(self, tenant_id: str, version: Version) -> None:
        """Sort the version now readers see it (type, correspondents, tags, filing, fields:
        ``sorting.service``). A failure leaves the document unsorted, never fails its job
        (``POST /v1/sorting/documents/{id}/sort`` runs it again)."""
        try:
            with INGEST_STAGE.labels("sort").time():
                self.sorting.sort(tenant_id, version.document_id, version.id)
        except GedragError as exc:
            log.warning(
                "sorting failed", extra={"document_id": version.document_id, "cause": exc.detail}
            )
        except Exception:  # a sorting bug must not undo an indexed version
            log.exception("sorting failed", extra={"document_id": version.document_id})

    def _check_complete(self, tenant_id: str, version: Version, chunk_ids: list[str]) -> None:
        """Both stores hold every chunk, or a retry comes later: readers must never see half a
        version (a store that acknowledged a write it lost, a step interrupted between two
        writes). Vectors are checked by id (no filtered scan)."""
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
        """Purge a document from every store, with its deletion certificate
        (:class:`ingestion.purge.Purger`: resumable, idempotent steps; catalog rows last, so a
        retry after a crash still finds the rows that say what to remove)."""
        Purger(self.rt).run(job_id)

    def sync(self, tenant_id: str, document_id: str) -> None:
        """Copy changed title, tags, metadata and collection into the vector payloads (filters
        read them; nothing is embedded again), and the readers its collection's list gives it
        into the graph (a move changes them)."""
        try:
            doc = self.rt.catalog.documents.get(tenant_id, document_id)
        except NotFound:
            return
        self.rt.vectors.set_payload(
            tenant_id,
            document_id,
            {
                "title": doc.title,
                "tags": doc.tags,
                "metadata": doc.metadata,
                "collection": doc.collection,
            },
        )
        AccessService(self.rt).sync(tenant_id, [document_id])


class InProcessExecutor:
    """Runs the steps in the calling thread (evaluation, benchmarks, tools): the same steps as
    the Celery executor, one after the other. A transient store error propagates to the
    caller; a permanent one fails the job with its cause."""

    def __init__(self, service: IngestionService) -> None:
        self.service = service

    def submit(self, job: Job) -> None:
        self.run_all([job])

    def run_all(self, jobs: Sequence[Job], progress: BatchProgress | None = None) -> None:
        """Every job's steps, stage by stage: parse and chunk them all and make each
        searchable (terms, graph, publish), then embed all their chunks in large model calls
        (when the embedder keeps a memo: ``MemoEmbedder``) and complete each. Per-document
        calls of ~10 chunks run at half the speed of batches of 64+."""
        s = self.service
        report = progress or (lambda _stage, _done, _total: None)
        ingests = [j for j in jobs if j.kind == JobKind.INGEST]
        for j in jobs:
            if j.kind == JobKind.DELETE:
                s.delete(j.id)
        published = []
        for i, j in enumerate(ingests):
            if s.is_published(j.id) or s.first_stage(j.id):
                published.append(j)
            report("parse + chunk", i + 1, len(ingests))
        self._embed_ahead(published, report)
        for i, j in enumerate(published):
            try:
                s.index_vectors(j.id)
            except StoreUnavailable:
                raise
            except GedragError as exc:
                s.fail_job(j.id, f"embedding (vector store): {exc.detail}")
            s.finalize(j.id)
            report("index", i + 1, len(published))

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
