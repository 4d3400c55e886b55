"""Document operations behind the API: store originals, record rows, queue jobs.

Order matters for "a rejected or failed upload leaves nothing behind": files are fully checked
before anything is written; if queueing fails after the rows exist, the rows and exclusive
originals are removed again and the client gets 503.
"""

from __future__ import annotations

import logging
from typing import Any

from core.domain import Document, Job, Tenant
from core.errors import StoreUnavailable
from ingestion.service import Executor, IngestionService, Registered
from serving.schemas import UploadPublic
from serving.uploads import CheckedFile

log = logging.getLogger(__name__)


class DocumentService:
    """The API's document operations: registration by the ingestion service, jobs run by the
    executor (Celery workers, or the worker embedded in ``gedrag up``)."""

    def __init__(self, ingestion: IngestionService, executor: Executor) -> None:
        self.ingestion = ingestion
        self.executor = executor
        self.catalog = ingestion.rt.catalog

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
            reg = self.ingestion.register(
                tenant.id, collection, f, title=title or f.title, tags=tags, metadata=metadata
            )
            if reg.job is not None:
                self._submit_or_undo(reg.document, reg.job)
            results.append(_public(reg, f))
        return results

    def new_version(self, tenant: Tenant, document_id: str, f: CheckedFile) -> UploadPublic:
        reg = self.ingestion.register_version(tenant.id, document_id, f)
        if reg.job is not None:
            self.executor.submit(reg.job)
        return _public(reg, f)

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
        doc = self.catalog.documents.update(
            tenant.id, document_id, title=title, tags=tags, metadata=metadata
        )
        self.executor.sync(tenant.id, document_id)
        return doc

    def delete(self, tenant: Tenant, document_id: str) -> Job:
        job = self.catalog.documents.request_delete(tenant.id, document_id)
        self.executor.submit(job)
        return job

    def requeue_unfinished(self) -> int:
        """Queue again every job the catalog says is unfinished (the in-process broker forgets
        its queue when the process stops; the catalog does not)."""
        jobs = self.catalog.jobs.unfinished()
        for job in jobs:
            self.executor.submit(job)
        return len(jobs)

    def _submit_or_undo(self, doc: Document, job: Job) -> None:
        try:
            self.executor.submit(job)
        except StoreUnavailable:
            self.ingestion.unregister(doc.id, job.id)
            raise


def _public(reg: Registered, f: CheckedFile) -> UploadPublic:
    doc = reg.document
    if reg.job is None:
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
    return UploadPublic(
        document_id=doc.id,
        version=doc.current_version,
        job_id=reg.job.id,
        duplicate=False,
        filename=f.filename,
        media_type=f.media_type,
        status=doc.status,
    )
