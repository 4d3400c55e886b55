"""Document operations behind the API: store originals, record rows, queue jobs.

Order matters for "a rejected or failed upload leaves nothing behind": files are fully checked
before anything is written; if queueing fails after the rows exist, the rows and exclusive
originals are removed again and the client gets 503.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.exceptions import OperationalError as KombuOperationalError

from core.domain import Document, Job, JobKind, Tenant
from core.errors import Conflict, StoreUnavailable
from ingestion import tasks
from ingestion.celery_app import GedragCelery
from ingestion.runtime import Runtime
from serving.schemas import UploadPublic
from serving.uploads import CheckedFile
from stores.catalog import NewVersion

log = logging.getLogger(__name__)


class DocumentService:
    def __init__(self, runtime: Runtime, celery: GedragCelery) -> None:
        self.rt = runtime
        self.celery = celery

    def upload(
        self,
        tenant: Tenant,
        files: list[CheckedFile],
        *,
        collection: str,
        tags: list[str],
        metadata: dict[str, Any],
        title: str | None = None,
    ) -> list[UploadPublic]:
        """Create one document per file; identical content in the collection is returned as a
        duplicate instead of being ingested again (also within the same batch)."""
        results: list[UploadPublic] = []
        for f in files:
            existing = self.rt.catalog.find_by_content(tenant.id, collection, f.sha256)
            if existing is not None:
                results.append(_duplicate(existing, f))
                continue
            self.rt.blobs.put(tenant.id, f.sha256, f.source)
            doc, job = self.rt.catalog.create_document(
                tenant.id,
                collection,
                title=title or f.title,
                tags=tags,
                metadata=metadata,
                version=_new_version(f),
            )
            self._enqueue_or_undo(tasks.INGEST, job, created=doc.id)
            results.append(_accepted(doc, f, job))
        return results

    def new_version(self, tenant: Tenant, document_id: str, f: CheckedFile) -> UploadPublic:
        doc = self.rt.catalog.get_document(tenant.id, document_id)
        current = doc.current
        if current is not None and current.sha256 == f.sha256:
            return _duplicate(doc, f)
        other = self.rt.catalog.find_by_content(tenant.id, doc.collection, f.sha256)
        if other is not None and other.id != doc.id:
            raise Conflict(
                f"identical content already exists in collection {doc.collection!r} "
                f"as document {other.id}"
            )
        self.rt.blobs.put(tenant.id, f.sha256, f.source)
        doc, job = self.rt.catalog.add_version(tenant.id, document_id, _new_version(f))
        self._enqueue(tasks.INGEST, job)
        return _accepted(doc, f, job)

    def update(
        self,
        tenant: Tenant,
        document_id: str,
        *,
        title: str | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
    ) -> Document:
        """Change title/tags/metadata in the catalog, then in the vector payloads (a task)."""
        doc = self.rt.catalog.update_document(
            tenant.id, document_id, title=title, tags=tags, metadata=metadata
        )
        self._send(tasks.SYNC, tenant_id=tenant.id, document_id=document_id)
        return doc

    def delete(self, tenant: Tenant, document_id: str) -> Job:
        job = self.rt.catalog.request_delete(tenant.id, document_id)
        self._enqueue(tasks.DELETE, job)
        return job

    def requeue_unfinished(self) -> int:
        """Queue again every job the catalog says is unfinished (the in-process broker forgets
        its queue when the process stops; the catalog does not)."""
        jobs = self.rt.catalog.unfinished_jobs()
        for job in jobs:
            self._enqueue(tasks.INGEST if job.kind == JobKind.INGEST else tasks.DELETE, job)
        return len(jobs)

    def _enqueue(self, task: str, job: Job) -> None:
        self._send(task, job_id=job.id)

    def _send(self, task: str, **kwargs: str) -> None:
        try:
            self.celery.send_task(task, kwargs=kwargs)
        except KombuOperationalError as exc:
            raise StoreUnavailable(f"job queue unavailable: {exc}") from exc

    def _enqueue_or_undo(self, task: str, job: Job, *, created: str) -> None:
        try:
            self._enqueue(task, job)
        except StoreUnavailable:
            for tenant_id, sha in self.rt.catalog.exclusive_blobs(created):
                self.rt.blobs.delete(tenant_id, sha)
            self.rt.catalog.purge_document(created)
            self.rt.catalog.delete_job(job.id)
            raise


def _new_version(f: CheckedFile) -> NewVersion:
    return NewVersion(
        sha256=f.sha256, size_bytes=f.size_bytes, media_type=f.media_type, filename=f.filename
    )


def _accepted(doc: Document, f: CheckedFile, job: Job) -> UploadPublic:
    return UploadPublic(
        document_id=doc.id,
        version=doc.current_version,
        job_id=job.id,
        duplicate=False,
        filename=f.filename,
        media_type=f.media_type,
        status=doc.status,
    )


def _duplicate(doc: Document, f: CheckedFile) -> UploadPublic:
    number = next(v.number for v in doc.versions if v.sha256 == f.sha256)
    return UploadPublic(
        document_id=doc.id,
        version=number,
        job_id=None,
        duplicate=True,
        filename=f.filename,
        media_type=f.media_type,
        status=doc.status,
    )
