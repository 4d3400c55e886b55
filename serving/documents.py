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
        duplicate instead of being ingested again (also within the same batch). The tenant's
        daily quotas are checked for the whole batch first (429/413, nothing stored)."""
        self._check_quota(tenant, files)
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
        self._check_quota(tenant, [f])
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
        collection: str | None = None,
    ) -> Document:
        """Change title/tags/metadata or the collection in the catalog, then in the vector
        payloads (a task: nothing is embedded again)."""
        if collection is not None or tags is not None or metadata is not None:
            # A legal hold freezes where a held document is and what selects it.
            self.catalog.records.refuse_if_held(
                tenant.id, document_id, action="move" if collection else "relabel", actor="api"
            )
        if collection is not None:
            self.catalog.documents.move(tenant.id, document_id, collection)
        doc = self.catalog.documents.update(
            tenant.id, document_id, title=title, tags=tags, metadata=metadata
        )
        self.executor.sync(tenant.id, document_id)
        return doc

    def requeue_unfinished(self) -> int:
        """Queue again every job the catalog says is unfinished (the in-process broker forgets
        its queue when the process stops; the catalog does not)."""
        jobs = self.catalog.jobs.unfinished()
        for job in jobs:
            self.executor.submit(job)
        return len(jobs)

    def _check_quota(self, tenant: Tenant, files: list[CheckedFile]) -> None:
        self.ingestion.check_quota(tenant.id, [f.size_bytes for f in files])

    def _submit_or_undo(self, doc: Document, job: Job) -> None:
        try:
            self.executor.submit(job)
        except StoreUnavailable:
            self.ingestion.unregister(doc.id, job.id)
            raise


def _public(reg: Registered, f: CheckedFile) -> UploadPublic:
    doc = reg.document
    if reg.job is None:
        current = doc.current
        number = (
            current.number
            if current is not None and current.sha256 == f.sha256
            else next(v.number for v in doc.versions if v.sha256 == f.sha256)
        )
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
