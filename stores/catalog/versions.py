"""Versions of documents as ingestion sees them: loaded by id for any tenant (workers act for
every tenant), their indexing status, and the switch of the active version readers see."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from core.domain import HIDDEN_STATUSES, Document, DocumentStatus, Usage, Version
from core.errors import NotFound
from stores.catalog import rows as conv
from stores.catalog.database import Database
from stores.catalog.documents import DocumentRepository
from stores.catalog.models import DocumentRow, VersionRow, utcnow


class VersionRepository:
    def __init__(self, db: Database, documents: DocumentRepository) -> None:
        self.db = db
        self.documents = documents

    def get(self, tenant_id: str, document_id: str, number: int | None = None) -> Version:
        """One version (the current one by default) of a tenant's document."""
        doc = self.documents.get(tenant_id, document_id)
        wanted = doc.current_version if number is None else number
        for v in doc.versions:
            if v.number == wanted:
                return v
        raise NotFound(f"document {document_id} has no version {wanted}")

    def set_status(
        self,
        version_id: str,
        status: DocumentStatus,
        *,
        chunk_count: int | None = None,
        entity_count: int | None = None,
    ) -> None:
        """Record a version's indexing outcome; the document follows its current version."""
        with self.db.session() as s:
            vrow = s.get(VersionRow, version_id)
            if vrow is None:
                raise NotFound(f"no version {version_id}")
            vrow.status = status
            if chunk_count is not None:
                vrow.chunk_count = chunk_count
            if entity_count is not None:
                vrow.entity_count = entity_count
            doc = s.get(DocumentRow, vrow.document_id)
            if (
                doc is not None
                and doc.current_version == vrow.number
                and doc.status not in HIDDEN_STATUSES
            ):
                doc.status = status
                doc.updated_at = utcnow()

    def load(self, version_id: str) -> Version:
        """A version by id, whatever its tenant (workers act for every tenant)."""
        with self.db.session() as s:
            row = s.get(VersionRow, version_id)
            if row is None:
                raise NotFound(f"no version with id {version_id!r}")
            return conv.version(row)

    def set_entity_count(self, version_id: str, entity_count: int) -> None:
        with self.db.session() as s:
            row = s.get(VersionRow, version_id)
            if row is not None:
                row.entity_count = entity_count

    def activate(
        self,
        version_id: str,
        *,
        chunk_count: int,
        status: DocumentStatus = DocumentStatus.READY,
    ) -> Document | None:
        """Mark the version ``status`` (ready, or searchable before its embedding) and,
        unless a newer version is already active, make it the one readers see: a single
        transaction, so readers switch from the old to the new version at once. Returns the
        document afterwards (``None`` if it was deleted)."""
        with self.db.session() as s:
            vrow = s.get(VersionRow, version_id)
            if vrow is None:
                return None
            doc = s.get(DocumentRow, vrow.document_id)
            if doc is None:
                return None
            vrow.status = status
            vrow.chunk_count = chunk_count
            if doc.active_version is None or doc.active_version < vrow.number:
                doc.active_version = vrow.number
            if doc.current_version == vrow.number and doc.status not in HIDDEN_STATUSES:
                doc.status = status
            doc.updated_at = utcnow()
            s.flush()
            s.refresh(doc)
            return conv.document(doc)

    def usage_since(self, tenant_id: str, since: datetime) -> Usage:
        """The tenant's uploads (versions) created since ``since``, their bytes and the chunks
        they made (tenant quotas, ``ingestion.limits``). Deleted documents no longer count."""
        with self.db.session() as s:
            uploads, size, chunks, oldest = s.execute(
                select(
                    func.count(VersionRow.id),
                    func.coalesce(func.sum(VersionRow.size_bytes), 0),
                    func.coalesce(func.sum(VersionRow.chunk_count), 0),
                    func.min(VersionRow.created_at),
                )
                .join(DocumentRow, DocumentRow.id == VersionRow.document_id)
                .where(DocumentRow.tenant_id == tenant_id, VersionRow.created_at >= since)
            ).one()
        return Usage(uploads=uploads, bytes=int(size or 0), chunks=int(chunks or 0), oldest=oldest)

    def active(self, tenant_id: str, document_ids: list[str]) -> dict[str, str]:
        """``document_id → version_id`` of the active version of each live document."""
        with self.db.session() as s:
            rows = s.execute(
                select(DocumentRow.id, VersionRow.id)
                .join(VersionRow, VersionRow.document_id == DocumentRow.id)
                .where(
                    DocumentRow.tenant_id == tenant_id,
                    DocumentRow.id.in_(document_ids),
                    DocumentRow.status.notin_(HIDDEN_STATUSES),
                    VersionRow.number == DocumentRow.active_version,
                )
            )
            return {d: v for d, v in rows}
