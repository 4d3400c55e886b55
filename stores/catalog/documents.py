"""Documents and their versions' registration: the aggregate a tenant uploads, lists, edits and
deletes. A document id derives from tenant, collection and content, so a concurrent upload of
the same bytes collides on the primary key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import ids
from core.domain import (
    HIDDEN_STATUSES,
    Document,
    DocumentFilter,
    DocumentStatus,
    Job,
    JobKind,
    JobState,
    Page,
)
from core.errors import Conflict, NotFound
from stores.catalog import rows as conv
from stores.catalog.access import readable_documents
from stores.catalog.collections import CollectionRepository
from stores.catalog.database import Database
from stores.catalog.models import DocumentRow, JobRow, MetaRow, TagRow, VersionRow, utcnow
from stores.catalog.sorting import filter_clauses as sorting_clauses


@dataclass(frozen=True)
class NewVersion:
    """An original file already written to the blob store, to be recorded as a version."""

    sha256: str
    size_bytes: int
    media_type: str
    filename: str


@dataclass(frozen=True)
class LiveDocument:
    """A document not being deleted, as migrations and verification scan them."""

    tenant_id: str
    document_id: str
    active_version_id: str | None
    busy: bool  # a job is still queued or running for it: its stores may legitimately differ
    # Its active version is searchable by its terms, its embedding never completed (failed or
    # interrupted: progressive indexing). Repair embeds it.
    embedding_pending: bool = False


class DocumentRepository:
    def __init__(self, db: Database, collections: CollectionRepository) -> None:
        self.db = db
        self.collections = collections

    def find_by_content(self, tenant_id: str, collection: str, sha256: str) -> Document | None:
        """The live document of the collection holding a version with this content, if any."""
        with self.db.session() as s:
            row = s.scalar(
                select(DocumentRow)
                .join(VersionRow, VersionRow.document_id == DocumentRow.id)
                .where(
                    DocumentRow.tenant_id == tenant_id,
                    DocumentRow.collection_id == ids.collection_id(tenant_id, collection),
                    DocumentRow.status.notin_(HIDDEN_STATUSES),
                    VersionRow.sha256 == sha256,
                )
                .limit(1)
            )
            return None if row is None else conv.document(row)

    def create(
        self,
        tenant_id: str,
        collection: str,
        *,
        title: str,
        tags: list[str],
        metadata: dict[str, Any],
        version: NewVersion,
    ) -> tuple[Document, Job]:
        """Record a new document with its first version and a queued ingest job.

        The document id is derived from tenant, collection and content, so a concurrent upload
        of the same bytes collides on the primary key: that race answers :class:`Conflict`.
        """
        coll = self.collections.ensure(tenant_id, collection)
        try:
            with self.db.session() as s:
                doc_id = self._free_id(s, tenant_id, coll.id, version.sha256)
                row = DocumentRow(
                    id=doc_id,
                    tenant_id=tenant_id,
                    collection_id=coll.id,
                    title=title,
                    status=DocumentStatus.QUEUED,
                    current_version=1,
                    meta=metadata,
                )
                row.tags = [TagRow(tag=t) for t in tags]
                row.meta_index = conv.meta_rows(metadata)
                s.add(row)
                s.flush()
                job = self._add_version(s, row, version)
                s.flush()
                s.refresh(row)
                return conv.document(row), job
        except IntegrityError as exc:
            raise Conflict("the same content is being uploaded concurrently; retry") from exc

    @staticmethod
    def _free_id(s: Session, tenant_id: str, collection_id: str, sha256: str) -> str:
        """The id of a new document: derived from tenant, collection and content, or, when a
        document moved to another collection still holds that id, derived again from it (still
        deterministic, so concurrent uploads of the same bytes still collide)."""
        doc_id = ids.document_id(tenant_id, collection_id, sha256)
        while (taken := s.get(DocumentRow, doc_id)) is not None:
            if taken.collection_id == collection_id:
                if taken.status == DocumentStatus.TRASHED:
                    raise Conflict(
                        f"identical content is in the trash as document {doc_id}: restore it"
                    )
                break  # the same upload, concurrently: the insert raises the conflict
            doc_id = ids.stable_uuid("document", "moved", doc_id)
        return doc_id

    def move(self, tenant_id: str, document_id: str, collection: str) -> Document:
        """Put the document in another collection (created if missing, its name checked);
        :class:`Conflict` when a document there already holds one of its versions' content, or
        while one of its jobs is unfinished."""
        target = self.collections.ensure(tenant_id, collection)
        with self.db.session() as s:
            row = self._live_row(s, tenant_id, document_id)
            if row.collection_id == target.id:
                return conv.document(row)
            # A job still writing vectors would write them with the old collection after the
            # move had updated the payloads.
            pending = s.scalar(
                select(JobRow.id)
                .where(
                    JobRow.document_id == row.id,
                    JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]),
                )
                .limit(1)
            )
            if pending is not None:
                raise Conflict(
                    f"document {document_id} is being indexed (job {pending}); move it once "
                    "the job has finished"
                )
            shas = {v.sha256 for v in row.versions}
            other = s.scalar(
                select(DocumentRow.id)
                .join(VersionRow, VersionRow.document_id == DocumentRow.id)
                .where(
                    DocumentRow.collection_id == target.id,
                    DocumentRow.status != DocumentStatus.DELETING,
                    VersionRow.sha256.in_(shas),
                )
                .limit(1)
            )
            if other is not None:
                raise Conflict(
                    f"identical content already exists in collection {target.name!r} "
                    f"as document {other}"
                )
            row.collection_id = target.id
            row.updated_at = utcnow()
            s.flush()
            s.expire(row, ["collection"])
            return conv.document(row)

    def add_version(
        self, tenant_id: str, document_id: str, version: NewVersion
    ) -> tuple[Document, Job]:
        """Append a version (number = last + 1) and queue its ingestion."""
        try:
            with self.db.session() as s:
                row = self._live_row(s, tenant_id, document_id)
                job = self._add_version(s, row, version)
                s.flush()
                s.refresh(row)
                return conv.document(row), job
        except IntegrityError as exc:
            raise Conflict("another version was added concurrently; retry") from exc

    def _add_version(self, s: Session, row: DocumentRow, version: NewVersion) -> Job:
        number = max((v.number for v in row.versions), default=0) + 1
        vrow = VersionRow(
            id=ids.version_id(row.id, number),
            document_id=row.id,
            number=number,
            sha256=version.sha256,
            size_bytes=version.size_bytes,
            media_type=version.media_type,
            filename=version.filename,
            status=DocumentStatus.QUEUED,
        )
        s.add(vrow)
        row.versions.append(vrow)
        row.current_version = number
        row.status = DocumentStatus.QUEUED
        row.updated_at = utcnow()
        job = JobRow(
            id=ids.new_id(),
            tenant_id=row.tenant_id,
            kind=JobKind.INGEST,
            document_id=row.id,
            version_id=vrow.id,
            state=JobState.QUEUED,
        )
        s.add(job)
        s.flush()
        return conv.job(job)

    def get(self, tenant_id: str, document_id: str) -> Document:
        """The document; :class:`NotFound` for unknown ids and for other tenants' documents."""
        with self.db.session() as s:
            return conv.document(self._row(s, tenant_id, document_id))

    def page(self, tenant_id: str, flt: DocumentFilter, *, cursor: str | None, limit: int) -> Page:
        """Newest first, keyset-paginated on (created_at, id) so pages stay stable under inserts."""
        q = select(DocumentRow).where(DocumentRow.tenant_id == tenant_id)
        if flt.status is not None:
            q = q.where(DocumentRow.status == flt.status)
        else:
            q = q.where(DocumentRow.status.notin_(HIDDEN_STATUSES))
        if flt.collection is not None:
            q = q.where(DocumentRow.collection_id == ids.collection_id(tenant_id, flt.collection))
        if flt.tag is not None:
            q = q.where(exists().where(TagRow.document_id == DocumentRow.id, TagRow.tag == flt.tag))
        for key, value in (flt.metadata or {}).items():
            q = q.where(
                exists().where(
                    MetaRow.document_id == DocumentRow.id,
                    MetaRow.key == key,
                    MetaRow.value == ids.canonical_json(value),
                )
            )
        if flt.title_contains:
            pattern = "%" + conv.escape_like(flt.title_contains.lower()) + "%"
            q = q.where(func.lower(DocumentRow.title).like(pattern, escape="\\"))
        q = q.where(*sorting_clauses(flt))  # type, correspondent, typed fields (issue #17)
        if flt.readable_by is not None:  # access lists (issue #19), in the query itself
            q = q.where(readable_documents(flt.readable_by))
        if cursor is not None:
            created, last_id = conv.decode_cursor(cursor)
            q = q.where(
                or_(
                    DocumentRow.created_at < created,
                    and_(DocumentRow.created_at == created, DocumentRow.id < last_id),
                )
            )
        q = q.order_by(DocumentRow.created_at.desc(), DocumentRow.id.desc()).limit(limit + 1)
        with self.db.session() as s:
            rows = list(s.scalars(q))
            items = [conv.document(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = conv.encode_cursor(last.created_at, last.id)
        return Page(items=items, next_cursor=next_cursor)

    def update(
        self,
        tenant_id: str,
        document_id: str,
        *,
        title: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Document:
        """Replace the given fields (tags and metadata are replaced whole, not merged)."""
        with self.db.session() as s:
            row = self._live_row(s, tenant_id, document_id)
            if title is not None:
                row.title = title
            if tags is not None:
                row.tags = [TagRow(tag=t) for t in tags]
            if metadata is not None:
                row.meta = metadata
                row.meta_index = conv.meta_rows(metadata)
            row.updated_at = utcnow()
            s.flush()
            s.refresh(row)
            return conv.document(row)

    def request_delete(self, tenant_id: str, document_id: str) -> Job:
        """Mark the document as deleting and queue the job that removes it from every store.

        Asking again while a deletion is pending returns the pending job (idempotent).
        """
        with self.db.session() as s:
            row = self._row(s, tenant_id, document_id)
            if row.status == DocumentStatus.DELETING:
                pending = s.scalar(
                    select(JobRow)
                    .where(JobRow.document_id == row.id, JobRow.kind == JobKind.DELETE)
                    .order_by(JobRow.created_at.desc())
                    .limit(1)
                )
                if pending is not None:
                    return conv.job(pending)
            row.status = DocumentStatus.DELETING
            row.updated_at = utcnow()
            job = JobRow(
                id=ids.new_id(),
                tenant_id=tenant_id,
                kind=JobKind.DELETE,
                document_id=row.id,
                state=JobState.QUEUED,
            )
            s.add(job)
            s.flush()
            return conv.job(job)

    def exclusive_blobs(self, document_id: str) -> list[tuple[str, str]]:
        """``(tenant_id, sha256)`` of this document's originals that no other document of the
        tenant references: the ones to delete from the blob store with it."""
        with self.db.session() as s:
            row = s.get(DocumentRow, document_id)
            if row is None:
                return []
            shas = {v.sha256 for v in row.versions}
            shared = set(
                s.scalars(
                    select(VersionRow.sha256)
                    .join(DocumentRow, DocumentRow.id == VersionRow.document_id)
                    .where(
                        DocumentRow.tenant_id == row.tenant_id,
                        DocumentRow.id != document_id,
                        VersionRow.sha256.in_(shas),
                    )
                )
            )
            return [(row.tenant_id, sha) for sha in sorted(shas - shared)]

    def purge(self, document_id: str) -> None:
        """Remove the document's rows (versions, tags, metadata); absent is fine."""
        with self.db.session() as s:
            row = s.get(DocumentRow, document_id)
            if row is not None:
                s.delete(row)

    @staticmethod
    def _row(s: Session, tenant_id: str, document_id: str) -> DocumentRow:
        row = s.get(DocumentRow, document_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no document with id {document_id!r}")
        return row

    def _live_row(self, s: Session, tenant_id: str, document_id: str) -> DocumentRow:
        row = self._row(s, tenant_id, document_id)
        if row.status == DocumentStatus.DELETING:
            raise Conflict(f"document {document_id} is being deleted")
        if row.status == DocumentStatus.TRASHED:
            raise Conflict(f"document {document_id} is in the trash: restore it first")
        return row

    # -- scans across tenants (migrations, verification) -------------------------------------

    def live(self, after: str | None = None, limit: int = 1000) -> list[LiveDocument]:
        """Documents not being deleted, by id, the first ``limit`` after ``after``."""
        q = (
            select(DocumentRow.id, DocumentRow.tenant_id, VersionRow.id, VersionRow.status)
            .outerjoin(
                VersionRow,
                (VersionRow.document_id == DocumentRow.id)
                & (VersionRow.number == DocumentRow.active_version),
            )
            .where(DocumentRow.status != DocumentStatus.DELETING)
        )
        if after is not None:
            q = q.where(DocumentRow.id > after)
        with self.db.session() as s:
            found = s.execute(q.order_by(DocumentRow.id).limit(limit)).all()
            doc_ids = [r[0] for r in found]
            busy = set(
                s.scalars(
                    select(JobRow.document_id).where(
                        JobRow.document_id.in_(doc_ids),
                        JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]),
                    )
                )
            )
        return [
            LiveDocument(t, d, v, d in busy, status == DocumentStatus.SEARCHABLE)
            for d, t, v, status in found
        ]

    def all_live(self) -> list[LiveDocument]:
        out: list[LiveDocument] = []
        after: str | None = None
        while page := self.live(after):
            out.extend(page)
            after = page[-1].document_id
        return out

    def edited_since(self, since: datetime) -> list[tuple[str, str]]:
        """``(tenant_id, document_id)`` of the documents updated since then."""
        with self.db.session() as s:
            found = s.execute(
                select(DocumentRow.tenant_id, DocumentRow.id).where(DocumentRow.updated_at >= since)
            )
            return [(t, d) for t, d in found]

    def all_ids(self) -> set[str]:
        """Every document the catalog knows, deleting ones included."""
        with self.db.session() as s:
            return set(s.scalars(select(DocumentRow.id)))
