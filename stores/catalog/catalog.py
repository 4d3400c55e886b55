"""SQLAlchemy implementation of the catalog, identical on SQLite and PostgreSQL.

One class rather than a Protocol with two implementations: SQLAlchemy's dialects are the two
backends, and the same conformance tests run against both engines (``tests/integration``).
Every method opens its own transaction and returns frozen domain objects, never ORM rows, so
callers cannot lazy-load across a closed session. Vendor errors are wrapped at this boundary:
connection failures become :class:`StoreUnavailable` (retryable), constraint races become
:class:`Conflict` or are resolved as idempotent duplicates.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import and_, create_engine, delete, event, exists, func, or_, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core import ids
from core.domain import (
    ApiKeyInfo,
    ChunkRecord,
    Collection,
    Document,
    DocumentFilter,
    DocumentStatus,
    Job,
    JobKind,
    JobState,
    Page,
    Tenant,
    Version,
)
from core.errors import Conflict, InvalidInput, NotFound, StoreUnavailable, Unauthorized
from stores.catalog.models import (
    ApiKeyRow,
    ChunkRow,
    CollectionRow,
    DocumentRow,
    JobRow,
    MetaRow,
    StagedChunkRow,
    TagRow,
    TenantRow,
    VersionRow,
    utcnow,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
# Metadata values longer than this are stored but not indexed for filtering (column width).
META_INDEX_MAX = 500
# Arbitrary constant for pg_advisory_lock: serialises migrations of processes starting together.
MIGRATION_LOCK_ID = 7_305_112_026


@dataclass(frozen=True)
class NewVersion:
    """An original file already written to the blob store, to be recorded as a version."""

    sha256: str
    size_bytes: int
    media_type: str
    filename: str


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def normalise_url(url: str) -> str:
    """``postgresql://`` would pick psycopg2, which gedrag does not install; use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Catalog:
    """Tenant-scoped access to the catalog database."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, echo=echo, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- plumbing ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent, safe to run on start)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except (OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(f"catalog unreachable while migrating: {exc.orig}") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commit on success, roll back on error, connection errors wrapped."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StoreUnavailable(f"catalog unavailable: {exc.orig}") from exc

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """One round trip to the database; :class:`StoreUnavailable` when it does not answer."""
        with self.session() as s:
            s.execute(text("SELECT 1"))

    # -- tenants and keys -------------------------------------------------------------------

    def create_tenant(self, name: str) -> Tenant:
        name = _clean_name(name, "name")
        try:
            with self.session() as s:
                row = TenantRow(id=ids.tenant_id(name), name=name)
                s.add(row)
                s.flush()
                return _tenant(row)
        except IntegrityError as exc:
            raise Conflict(f"tenant {name!r} already exists") from exc

    def get_tenant(self, name: str) -> Tenant:
        with self.session() as s:
            row = s.scalar(select(TenantRow).where(TenantRow.name == name))
            if row is None:
                raise NotFound(f"no tenant named {name!r}")
            return _tenant(row)

    def list_tenants(self) -> list[Tenant]:
        with self.session() as s:
            return [_tenant(r) for r in s.scalars(select(TenantRow).order_by(TenantRow.name))]

    def create_api_key(self, tenant_name: str, name: str = "default") -> tuple[str, ApiKeyInfo]:
        """Create a key for the tenant; the key itself is returned once and never stored."""
        tenant = self.get_tenant(tenant_name)
        key, key_hash = ids.new_api_key()
        with self.session() as s:
            row = ApiKeyRow(
                id=ids.new_id(),
                tenant_id=tenant.id,
                name=_clean_name(name, "name"),
                prefix=key[:12],
                key_hash=key_hash,
            )
            s.add(row)
            s.flush()
            return key, _key(row)

    def list_api_keys(self, tenant_name: str) -> list[ApiKeyInfo]:
        tenant = self.get_tenant(tenant_name)
        with self.session() as s:
            rows = s.scalars(
                select(ApiKeyRow)
                .where(ApiKeyRow.tenant_id == tenant.id)
                .order_by(ApiKeyRow.created_at)
            )
            return [_key(r) for r in rows]

    def revoke_api_key(self, key_id: str) -> ApiKeyInfo:
        with self.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _key(row)

    def authenticate(self, key: str) -> Tenant:
        """The tenant owning this key; :class:`Unauthorized` if unknown or revoked."""
        with self.session() as s:
            row = s.scalar(
                select(TenantRow)
                .join(ApiKeyRow, ApiKeyRow.tenant_id == TenantRow.id)
                .where(ApiKeyRow.key_hash == ids.hash_api_key(key), ApiKeyRow.revoked_at.is_(None))
            )
            if row is None:
                raise Unauthorized("invalid or revoked API key")
            return _tenant(row)

    # -- collections ------------------------------------------------------------------------

    def create_collection(self, tenant_id: str, name: str, description: str = "") -> Collection:
        name = _clean_name(name, "name")
        try:
            with self.session() as s:
                row = CollectionRow(
                    id=ids.collection_id(tenant_id, name),
                    tenant_id=tenant_id,
                    name=name,
                    description=description,
                )
                s.add(row)
                s.flush()
                return _collection(row, 0)
        except IntegrityError as exc:
            raise Conflict(f"collection {name!r} already exists") from exc

    def ensure_collection(self, tenant_id: str, name: str) -> Collection:
        """The named collection, created if missing (uploads name their collection)."""
        name = _clean_name(name, "collection")
        with self.session() as s:
            row = s.get(CollectionRow, ids.collection_id(tenant_id, name))
            if row is not None:
                return _collection(row, 0)
        try:
            return self.create_collection(tenant_id, name)
        except Conflict:  # created concurrently: it exists now, which is all we need
            with self.session() as s:
                row = s.get(CollectionRow, ids.collection_id(tenant_id, name))
                assert row is not None
                return _collection(row, 0)

    def list_collections(self, tenant_id: str) -> list[Collection]:
        with self.session() as s:
            counts = (
                select(DocumentRow.collection_id, func.count().label("n"))
                .where(DocumentRow.tenant_id == tenant_id)
                .group_by(DocumentRow.collection_id)
                .subquery()
            )
            rows = s.execute(
                select(CollectionRow, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.collection_id == CollectionRow.id)
                .where(CollectionRow.tenant_id == tenant_id)
                .order_by(CollectionRow.name)
            )
            return [_collection(row, n) for row, n in rows]

    def delete_collection(self, tenant_id: str, name: str) -> None:
        """Delete an empty collection; :class:`Conflict` while it still holds documents."""
        with self.session() as s:
            row = s.get(CollectionRow, ids.collection_id(tenant_id, name))
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no collection named {name!r}")
            n = s.scalar(select(func.count()).where(DocumentRow.collection_id == row.id))
            if n:
                raise Conflict(
                    f"collection {name!r} still holds {n} document(s); delete them first"
                )
            s.delete(row)

    # -- documents --------------------------------------------------------------------------

    def find_by_content(self, tenant_id: str, collection: str, sha256: str) -> Document | None:
        """The live document of the collection holding a version with this content, if any."""
        with self.session() as s:
            row = s.scalar(
                select(DocumentRow)
                .join(VersionRow, VersionRow.document_id == DocumentRow.id)
                .where(
                    DocumentRow.tenant_id == tenant_id,
                    DocumentRow.collection_id == ids.collection_id(tenant_id, collection),
                    DocumentRow.status != DocumentStatus.DELETING,
                    VersionRow.sha256 == sha256,
                )
                .limit(1)
            )
            return None if row is None else _document(row)

    def create_document(
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
        coll = self.ensure_collection(tenant_id, collection)
        doc_id = ids.document_id(tenant_id, coll.id, version.sha256)
        try:
            with self.session() as s:
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
                row.meta_index = _meta_rows(metadata)
                s.add(row)
                s.flush()
                job = self._add_version(s, row, version)
                s.flush()
                s.refresh(row)
                return _document(row), job
        except IntegrityError as exc:
            raise Conflict("the same content is being uploaded concurrently; retry") from exc

    def add_version(
        self, tenant_id: str, document_id: str, version: NewVersion
    ) -> tuple[Document, Job]:
        """Append a version (number = last + 1) and queue its ingestion."""
        try:
            with self.session() as s:
                row = self._live_row(s, tenant_id, document_id)
                job = self._add_version(s, row, version)
                s.flush()
                s.refresh(row)
                return _document(row), job
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
        return _job(job)

    def get_document(self, tenant_id: str, document_id: str) -> Document:
        """The document; :class:`NotFound` for unknown ids and for other tenants' documents."""
        with self.session() as s:
            return _document(self._row(s, tenant_id, document_id))

    def get_version(self, tenant_id: str, document_id: str, number: int | None = None) -> Version:
        """One version (the current one by default) of a tenant's document."""
        doc = self.get_document(tenant_id, document_id)
        wanted = doc.current_version if number is None else number
        for v in doc.versions:
            if v.number == wanted:
                return v
        raise NotFound(f"document {document_id} has no version {wanted}")

    def list_documents(
        self, tenant_id: str, flt: DocumentFilter, *, cursor: str | None, limit: int
    ) -> Page:
        """Newest first, keyset-paginated on (created_at, id) so pages stay stable under inserts."""
        q = select(DocumentRow).where(DocumentRow.tenant_id == tenant_id)
        if flt.status is not None:
            q = q.where(DocumentRow.status == flt.status)
        else:
            q = q.where(DocumentRow.status != DocumentStatus.DELETING)
        if flt.collection is not None:
            q = q.where(DocumentRow.collection_id == ids.collection_id(tenant_id, flt.collection))
        if flt.tag is not None:
            q = q.where(exists().where(TagRow.document_id == DocumentRow.id, TagRow.tag == flt.tag))
        for key, value in (flt.metadata or {}).items():
            q = q.where(
                exists().where(
                    MetaRow.document_id == DocumentRow.id,
                    MetaRow.key == key,
                    MetaRow.value == canonical_json(value),
                )
            )
        if flt.title_contains:
            pattern = "%" + _escape_like(flt.title_contains.lower()) + "%"
            q = q.where(func.lower(DocumentRow.title).like(pattern, escape="\\"))
        if cursor is not None:
            created, last_id = _decode_cursor(cursor)
            q = q.where(
                or_(
                    DocumentRow.created_at < created,
                    and_(DocumentRow.created_at == created, DocumentRow.id < last_id),
                )
            )
        q = q.order_by(DocumentRow.created_at.desc(), DocumentRow.id.desc()).limit(limit + 1)
        with self.session() as s:
            rows = list(s.scalars(q))
            items = [_document(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = _encode_cursor(last.created_at, last.id)
        return Page(items=items, next_cursor=next_cursor)

    def update_document(
        self,
        tenant_id: str,
        document_id: str,
        *,
        title: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Document:
        """Replace the given fields (tags and metadata are replaced whole, not merged)."""
        with self.session() as s:
            row = self._live_row(s, tenant_id, document_id)
            if title is not None:
                row.title = title
            if tags is not None:
                row.tags = [TagRow(tag=t) for t in tags]
            if metadata is not None:
                row.meta = metadata
                row.meta_index = _meta_rows(metadata)
            row.updated_at = utcnow()
            s.flush()
            s.refresh(row)
            return _document(row)

    def request_delete(self, tenant_id: str, document_id: str) -> Job:
        """Mark the document as deleting and queue the job that removes it from every store.

        Asking again while a deletion is pending returns the pending job (idempotent).
        """
        with self.session() as s:
            row = self._row(s, tenant_id, document_id)
            if row.status == DocumentStatus.DELETING:
                pending = s.scalar(
                    select(JobRow)
                    .where(JobRow.document_id == row.id, JobRow.kind == JobKind.DELETE)
                    .order_by(JobRow.created_at.desc())
                    .limit(1)
                )
                if pending is not None:
                    return _job(pending)
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
            return _job(job)

    def exclusive_blobs(self, document_id: str) -> list[tuple[str, str]]:
        """``(tenant_id, sha256)`` of this document's originals that no other document of the
        tenant references: the ones to delete from the blob store with it."""
        with self.session() as s:
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

    def purge_document(self, document_id: str) -> None:
        """Remove the document's rows (versions, tags, metadata); absent is fine."""
        with self.session() as s:
            row = s.get(DocumentRow, document_id)
            if row is not None:
                s.delete(row)

    def set_version_status(
        self,
        version_id: str,
        status: DocumentStatus,
        *,
        chunk_count: int | None = None,
        entity_count: int | None = None,
    ) -> None:
        """Record a version's indexing outcome; the document follows its current version."""
        with self.session() as s:
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
                and doc.status != DocumentStatus.DELETING
            ):
                doc.status = status
                doc.updated_at = utcnow()

    def load_version(self, version_id: str) -> Version:
        """A version by id, whatever its tenant (workers act for every tenant)."""
        with self.session() as s:
            row = s.get(VersionRow, version_id)
            if row is None:
                raise NotFound(f"no version with id {version_id!r}")
            return _version(row)

    # -- chunks and activation ---------------------------------------------------------------

    def replace_chunks(self, version_id: str, chunks: list[ChunkRecord]) -> None:
        """The version's chunks become exactly ``chunks`` (idempotent: same ids, same rows)."""
        with self.session() as s:
            s.execute(delete(ChunkRow).where(ChunkRow.version_id == version_id))
            s.add_all(ChunkRow(**chunk_columns(c, version_id)) for c in chunks)

    def version_chunks(self, version_id: str) -> list[ChunkRecord]:
        with self.session() as s:
            rows = s.scalars(
                select(ChunkRow).where(ChunkRow.version_id == version_id).order_by(ChunkRow.ordinal)
            )
            return [chunk_record(r) for r in rows]

    def drop_chunks(self, version_id: str) -> None:
        with self.session() as s:
            s.execute(delete(ChunkRow).where(ChunkRow.version_id == version_id))

    def set_entity_count(self, version_id: str, entity_count: int) -> None:
        with self.session() as s:
            row = s.get(VersionRow, version_id)
            if row is not None:
                row.entity_count = entity_count

    def activate_version(self, version_id: str, *, chunk_count: int) -> Document | None:
        """Mark the version ready and, unless a newer version is already active, make it the
        one readers see: a single transaction, so readers switch from the old to the new
        version at once. Returns the document afterwards (``None`` if it was deleted)."""
        with self.session() as s:
            vrow = s.get(VersionRow, version_id)
            if vrow is None:
                return None
            doc = s.get(DocumentRow, vrow.document_id)
            if doc is None:
                return None
            vrow.status = DocumentStatus.READY
            vrow.chunk_count = chunk_count
            if doc.active_version is None or doc.active_version < vrow.number:
                doc.active_version = vrow.number
            if doc.current_version == vrow.number and doc.status != DocumentStatus.DELETING:
                doc.status = DocumentStatus.READY
            doc.updated_at = utcnow()
            s.flush()
            s.refresh(doc)
            return _document(doc)

    def active_versions(self, tenant_id: str, document_ids: list[str]) -> dict[str, str]:
        """``document_id → version_id`` of the active version of each live document."""
        with self.session() as s:
            rows = s.execute(
                select(DocumentRow.id, VersionRow.id)
                .join(VersionRow, VersionRow.document_id == DocumentRow.id)
                .where(
                    DocumentRow.tenant_id == tenant_id,
                    DocumentRow.id.in_(document_ids),
                    DocumentRow.status != DocumentStatus.DELETING,
                    VersionRow.number == DocumentRow.active_version,
                )
            )
            return {d: v for d, v in rows}

    # -- jobs -------------------------------------------------------------------------------

    def get_job(self, tenant_id: str, job_id: str) -> Job:
        with self.session() as s:
            row = s.get(JobRow, job_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no job with id {job_id!r}")
            return _job(row)

    def load_job(self, job_id: str) -> Job:
        """A job by id, whatever its tenant (workers act for every tenant)."""
        with self.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job with id {job_id!r}")
            return _job(row)

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        stage: str | None = None,
        progress: float | None = None,
        error: str | None = None,
        new_attempt: bool = False,
    ) -> Job:
        with self.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job with id {job_id!r}")
            if state is not None:
                row.state = state
            if stage is not None:
                row.stage = stage
            if progress is not None:
                row.progress = max(0.0, min(1.0, progress))
            if error is not None:
                row.error = error
            if new_attempt:
                row.attempts += 1
            row.updated_at = utcnow()
            return _job(row)

    def unfinished_jobs(self) -> list[Job]:
        """Jobs still queued or running, oldest first."""
        with self.session() as s:
            rows = s.scalars(
                select(JobRow)
                .where(JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]))
                .order_by(JobRow.created_at)
            )
            return [_job(r) for r in rows]

    def pending_job_counts(self) -> dict[JobState, int]:
        """How many jobs are queued and running (the queue depth, without loading them)."""
        pending = (JobState.QUEUED, JobState.RUNNING)
        with self.session() as s:
            rows = s.execute(
                select(JobRow.state, func.count())
                .where(JobRow.state.in_(pending))
                .group_by(JobRow.state)
            ).all()
        counts = {state: 0 for state in pending}
        counts.update({JobState(state): n for state, n in rows})
        return counts

    def delete_job(self, job_id: str) -> None:
        with self.session() as s:
            row = s.get(JobRow, job_id)
            if row is not None:
                s.delete(row)

    # -- helpers ----------------------------------------------------------------------------

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
        return row


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets the API read while the embedded worker writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def _clean_name(name: str, field: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"{field} must be 1-100 printable characters", field=field)
    return name


def _escape_like(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_cursor(created_at: datetime, doc_id: str) -> str:
    raw = f"{created_at.isoformat()}|{doc_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, doc_id = raw.split("|", 1)
        return datetime.fromisoformat(created), doc_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


def _meta_rows(metadata: dict[str, Any]) -> list[MetaRow]:
    rows = []
    for key, value in metadata.items():
        encoded = canonical_json(value)
        if len(key) <= 100 and len(encoded) <= META_INDEX_MAX:
            rows.append(MetaRow(key=key, value=encoded))
    return rows


def _tenant(r: TenantRow) -> Tenant:
    return Tenant(id=r.id, name=r.name, created_at=r.created_at)


def _key(r: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        prefix=r.prefix,
        created_at=r.created_at,
        revoked_at=r.revoked_at,
    )


def _collection(r: CollectionRow, count: int) -> Collection:
    return Collection(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        description=r.description,
        created_at=r.created_at,
        document_count=count,
    )


def _version(r: VersionRow) -> Version:
    return Version(
        id=r.id,
        document_id=r.document_id,
        number=r.number,
        sha256=r.sha256,
        size_bytes=r.size_bytes,
        media_type=r.media_type,
        filename=r.filename,
        status=DocumentStatus(r.status),
        chunk_count=r.chunk_count,
        entity_count=r.entity_count,
        created_at=r.created_at,
    )


def _document(r: DocumentRow) -> Document:
    return Document(
        id=r.id,
        tenant_id=r.tenant_id,
        collection=r.collection.name,
        title=r.title,
        status=DocumentStatus(r.status),
        current_version=r.current_version,
        tags=[t.tag for t in r.tags],
        metadata=dict(r.meta),
        created_at=r.created_at,
        updated_at=r.updated_at,
        versions=[_version(v) for v in r.versions],
        active_version=r.active_version,
    )


# The columns a chunk row (the catalog's, or a staged one) shares with a chunk record.
CHUNK_COLUMNS = (
    "id",
    "tenant_id",
    "document_id",
    "version_id",
    "ordinal",
    "text",
    "section_path",
    "page_start",
    "page_end",
    "language",
    "token_count",
)
IN_BATCH = 500  # values per IN (...): well under SQLite's bound-parameter limit (32,766)


def in_batches(items: Iterable[T], size: int = IN_BATCH) -> list[list[T]]:
    """``items`` in lists small enough for one ``IN (...)`` or one multi-row insert."""
    seq = list(items)
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def chunk_columns(c: ChunkRecord, version_id: str) -> dict[str, Any]:
    """A chunk record as the columns of a chunk row, for this version."""
    return {f: getattr(c, f) for f in CHUNK_COLUMNS} | {
        "version_id": version_id,
        "section_path": list(c.section_path),
    }


def chunk_record(r: ChunkRow | StagedChunkRow) -> ChunkRecord:
    return ChunkRecord(
        **{f: getattr(r, f) for f in CHUNK_COLUMNS} | {"section_path": tuple(r.section_path)}
    )


def _job(r: JobRow) -> Job:
    return Job(
        id=r.id,
        tenant_id=r.tenant_id,
        kind=JobKind(r.kind),
        document_id=r.document_id,
        version_id=r.version_id,
        state=JobState(r.state),
        stage=r.stage,
        progress=r.progress,
        error=r.error,
        attempts=r.attempts,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
