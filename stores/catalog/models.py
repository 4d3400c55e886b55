"""Relational schema of the catalog (SQLite by default, PostgreSQL in production).

Tags and metadata live in side tables so that filters are plain indexed equality joins on both
engines (no JSON operators, which differ between SQLite and PostgreSQL). Timestamps are stored as
naive UTC and returned timezone-aware by :class:`UtcDateTime`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ID = String(36)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: identical behaviour on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON}


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # People (Alembic 0011): the user or service account the key acts for, and its scopes.
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None, index=True
    )
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class CollectionRow(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_listing", "tenant_id", "created_at", "id"),
        Index("ix_documents_collection", "collection_id", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))
    current_version: Mapped[int] = mapped_column(Integer)
    # The version readers see: switched in one transaction once every store holds it.
    active_version: Mapped[int | None] = mapped_column(Integer, default=None)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    collection: Mapped[CollectionRow] = relationship(lazy="joined")
    versions: Mapped[list[VersionRow]] = relationship(
        order_by="VersionRow.number", cascade="all, delete-orphan", lazy="selectin"
    )
    tags: Mapped[list[TagRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="TagRow.tag"
    )
    meta_index: Mapped[list[MetaRow]] = relationship(cascade="all, delete-orphan")


class TagRow(Base):
    __tablename__ = "document_tags"
    __table_args__ = (Index("ix_document_tags_tag", "tag"),)

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)


class MetaRow(Base):
    """One row per top-level metadata key; ``value`` is the canonical JSON of the value."""

    __tablename__ = "document_meta"
    __table_args__ = (Index("ix_document_meta_kv", "key", "value"),)

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


class VersionRow(Base):
    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(120))
    filename: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))
    chunk_count: Mapped[int | None] = mapped_column(default=None)
    entity_count: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The version's ingestion jobs, oldest first: a failed version's cause is its last job's
    # error (read-only; jobs carry no foreign key, a delete job outlives its document).
    jobs: Mapped[list[JobRow]] = relationship(
        primaryjoin="foreign(JobRow.version_id) == VersionRow.id",
        viewonly=True,
        lazy="selectin",
        order_by="JobRow.created_at",
    )


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_document", "document_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    # No foreign key: a delete job outlives the document it removed.
    document_id: Mapped[str] = mapped_column(ID)
    version_id: Mapped[str | None] = mapped_column(ID, default=None)
    state: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(32), default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # What the user should know about a job that succeeded (Alembic 0006).
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChunkRow(Base):
    """A chunk as the chunker made it: the record that vector and graph stores are checked
    against (counts, ids), and the text that citations quote."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_version", "version_id", "ordinal"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, index=True)
    document_id: Mapped[str] = mapped_column(ID, index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("document_versions.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    section_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    page_start: Mapped[int | None] = mapped_column(default=None)
    page_end: Mapped[int | None] = mapped_column(default=None)
    language: Mapped[str] = mapped_column(String(8))
    token_count: Mapped[int] = mapped_column(Integer)


# -- embedded graph store (stores.graph.relational) -------------------------------------------


class GraphChunkRow(Base):
    __tablename__ = "graph_chunks"
    __table_args__ = (Index("ix_graph_chunks_doc", "tenant_id", "document_id", "version_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    document_id: Mapped[str] = mapped_column(ID)
    version_id: Mapped[str] = mapped_column(ID)
    ordinal: Mapped[int] = mapped_column(Integer)


class GraphDocumentRow(Base):
    __tablename__ = "graph_documents"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, index=True)
    title: Mapped[str] = mapped_column(String(300))


class GraphEntityRow(Base):
    __tablename__ = "graph_entities"

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))


class GraphMentionRow(Base):
    __tablename__ = "graph_mentions"
    __table_args__ = (Index("ix_graph_mentions_entity", "tenant_id", "entity_key"),)

    chunk_id: Mapped[str] = mapped_column(
        ForeignKey("graph_chunks.id", ondelete="CASCADE"), primary_key=True
    )
    entity_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)


class GraphRelationRow(Base):
    """Derived co-mention counts, ``source_key < target_key``."""

    __tablename__ = "graph_relations"

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    source_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    target_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    weight: Mapped[int] = mapped_column(Integer)


# -- store migrations (infra.migrate) ----------------------------------------------------------


class MigrationRunRow(Base):
    """One `gedrag migrate ...` run: what was asked, how it ended, what it did."""

    __tablename__ = "migration_runs"
    __table_args__ = (Index("ix_migration_runs_started", "started_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    command: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dry_run: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class MigrationStateRow(Base):
    """Durable state of the store migrations: backfill checkpoints, which graph store serves
    reads during dual write, the collection an alias pointed to before a switch."""

    __tablename__ = "migration_state"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StagedChunkRow(Base):
    """A chunk record set aside for a Qdrant collection during a re-chunking
    (:mod:`infra.migrate.vectors`): the rows a new collection is built from until the switch
    makes them the catalog's chunks, then the rows the previous collection was built from
    until ``finalize`` (rollback swaps them back). Same columns as :class:`ChunkRow`."""

    __tablename__ = "staged_chunks"
    __table_args__ = (Index("ix_staged_chunks_version", "collection", "version_id"),)

    collection: Mapped[str] = mapped_column(String(200), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    document_id: Mapped[str] = mapped_column(ID)
    # A purged document takes its staged rows with it.
    version_id: Mapped[str] = mapped_column(ForeignKey("document_versions.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    section_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    page_start: Mapped[int | None] = mapped_column(default=None)
    page_end: Mapped[int | None] = mapped_column(default=None)
    language: Mapped[str] = mapped_column(String(8))
    token_count: Mapped[int] = mapped_column(Integer)


# -- evaluation: releases, runs, per-question results, promotion decisions -----------------
# Platform-level (no tenant): a release is the pipeline every tenant is served by.


class ReleaseRow(Base):
    __tablename__ = "eval_releases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # hash of the canonical config
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalRunRow(Base):
    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_release", "release_id", "suite_id", "finished_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("eval_releases.id", ondelete="CASCADE"))
    suite: Mapped[str] = mapped_column(String(100))
    suite_id: Mapped[str] = mapped_column(String(40))
    code_version: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)  # latency, counts, judge, error
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class EvalResultRow(Base):
    __tablename__ = "eval_results"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column()


class PromotionRow(Base):
    __tablename__ = "eval_promotions"
    __table_args__ = (Index("ix_eval_promotions_decided", "promoted", "decided_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("eval_releases.id", ondelete="CASCADE"))
    previous_id: Mapped[str | None] = mapped_column(String(40), default=None)
    suite: Mapped[str | None] = mapped_column(String(100), default=None)
    promoted: Mapped[bool] = mapped_column()
    reasons: Mapped[dict[str, Any]] = mapped_column()  # {"reasons": [...]}
    evidence: Mapped[dict[str, Any]] = mapped_column()
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- records lifecycle: trash, legal holds, retention, certificates, audit (Alembic 0007) ------
# No foreign key to documents on purpose (except the trash): certificates and the audit trail
# outlive the documents they speak of, and name them by id only (no title, no content).


class TrashRow(Base):
    """A document in the trash: hidden from readers, restorable until ``purge_after``."""

    __tablename__ = "records_trash"
    __table_args__ = (Index("ix_records_trash_due", "purge_after"),)

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(ID, index=True)
    trashed_at: Mapped[datetime] = mapped_column(default=utcnow)
    purge_after: Mapped[datetime] = mapped_column()
    trashed_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500), default="")


class HoldRow(Base):
    __tablename__ = "records_holds"
    __table_args__ = (Index("ix_records_holds_tenant", "tenant_id", "released_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    placed_by: Mapped[str] = mapped_column(String(200))
    selector: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    released_by: Mapped[str | None] = mapped_column(String(200), default=None)


class RetentionPolicyRow(Base):
    __tablename__ = "records_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(200))
    selector: Mapped[dict[str, Any]] = mapped_column()
    years: Mapped[int] = mapped_column(Integer, default=0)
    months: Mapped[int] = mapped_column(Integer, default=0)
    days: Mapped[int] = mapped_column(Integer, default=0)
    anchor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    confirmed: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CertificateRow(Base):
    """A purge's state while it runs (a rerun goes on from it), its certificate once done."""

    __tablename__ = "records_certificates"
    __table_args__ = (
        Index("ix_records_certificates_doc", "document_id", "state"),
        Index("ix_records_certificates_tenant", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    document_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(ID, default=None)
    stores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    originals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditRow(Base):
    __tablename__ = "records_audit"
    __table_args__ = (
        Index("ix_records_audit_tenant", "tenant_id", "at"),
        UniqueConstraint("tenant_id", "seq", name="uq_records_audit_seq"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The trail of every action (Alembic 0011): a hash chain per tenant, the caller's address
    # and how it signed in. Append-only (database triggers refuse UPDATE and DELETE).
    seq: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(100), default="")
    via: Mapped[str] = mapped_column(String(200), default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class RecordsSettingsRow(Base):
    """A tenant's own records settings (the trash period); absent: the platform's defaults."""

    __tablename__ = "records_settings"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    trash_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- sorting: vocabulary, per-document decisions, typed field values, events (Alembic 0008) ----
# Issue #17. A decision row goes with its document (ON DELETE CASCADE); events name documents
# by id only and outlive them, like the records audit.


class SortingEntryRow(Base):
    """One vocabulary entry of a tenant (a document type, correspondent, tag or custom field);
    ``data`` is its JSON form (``sorting.vocabulary.Entry.to_dict``)."""

    __tablename__ = "sorting_entries"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "key"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SortingSettingsRow(Base):
    """A tenant's sorting settings and the version of its labelled examples (bumped by every
    label or correction: a process holding an older fitted classifier fits it again)."""

    __tablename__ = "sorting_settings"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    threshold: Mapped[float | None] = mapped_column(Float, default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    examples_version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SortingDocumentRow(Base):
    """A document's sorting: what was decided (``state``: applied, review, confirmed), by what
    (``reason``: rule, classifier, zero-shot, llm, user) with which confidence, the features the
    classifier reads, and, once a user gave or confirmed its type, the training label."""

    __tablename__ = "sorting_documents"
    __table_args__ = (
        Index("ix_sorting_documents_state", "tenant_id", "state", "updated_at"),
        Index("ix_sorting_documents_type", "tenant_id", "document_type"),
        Index("ix_sorting_documents_label", "tenant_id", "label"),
    )

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(ID)
    version_id: Mapped[str | None] = mapped_column(ID, default=None)
    state: Mapped[str] = mapped_column(String(16))
    document_type: Mapped[str | None] = mapped_column(String(100), default=None)
    issuer: Mapped[str | None] = mapped_column(String(100), default=None)
    recipient: Mapped[str | None] = mapped_column(String(100), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    reason: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    label: Mapped[str | None] = mapped_column(String(100), default=None)
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SortingFieldRow(Base):
    """One typed field value of a document, for filters: ``num`` (amounts; dates as epoch
    seconds) and / or ``text``."""

    __tablename__ = "sorting_fields"
    __table_args__ = (
        Index("ix_sorting_fields_num", "key", "num"),
        Index("ix_sorting_fields_text", "key", "text"),
    )

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    num: Mapped[float | None] = mapped_column(Float, default=None)
    text: Mapped[str | None] = mapped_column(String(500), default=None)


class SortingEventRow(Base):
    """Every sorting decision, automatic or a user's, with what it changed (``before``: what
    an undo restores)."""

    __tablename__ = "sorting_events"
    __table_args__ = (Index("ix_sorting_events_document", "tenant_id", "document_id", "at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    document_id: Mapped[str] = mapped_column(ID)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    reason: Mapped[str] = mapped_column(String(32), default="")
    before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(default=dict)


class GraphLabelRow(Base):
    """The embedded graph store's labels of a document (``stores.graph.relational``):
    ``Document -OF_TYPE-> DocumentType``, ``-FROM-> / -TO-> Correspondent``, by key."""

    __tablename__ = "graph_document_labels"
    __table_args__ = (Index("ix_graph_document_labels_key", "tenant_id", "relation", "key"),)

    document_id: Mapped[str] = mapped_column(ID, primary_key=True)
    relation: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(300))


# -- sources: watched folders, SMB shares, IMAP mailboxes, and each item's outcome (Alembic 0009)
# Issue #18. An item names the document it became (ON DELETE SET NULL: a document deleted in
# gedrag leaves the item's history, and the file is not taken again until it changes).


class SourceRow(Base):
    """A tenant's source: where documents come from (``config``, no secret), its credentials
    (``secret``: a Fernet token, never returned), its schedule and the state of its syncs.

    A round holds a lease (``lease_token`` until ``lease_until``) so that two workers never
    sync the same source at once; a worker that dies lets its lease expire."""

    __tablename__ = "sources"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_sources_due", "paused", "next_sync_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    collection: Mapped[str] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[str] = mapped_column(Text, default="")
    interval_s: Mapped[int] = mapped_column(Integer)
    on_delete: Mapped[str] = mapped_column(String(16))
    paused: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="new")
    cursor: Mapped[str | None] = mapped_column(Text, default=None)
    next_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    sync_requested: Mapped[bool] = mapped_column(default=False)
    lease_token: Mapped[str | None] = mapped_column(ID, default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_started_at: Mapped[datetime | None] = mapped_column(default=None)
    last_finished_at: Mapped[datetime | None] = mapped_column(default=None)
    last_ok_at: Mapped[datetime | None] = mapped_column(default=None)
    last_round: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceItemRow(Base):
    """One item of a source (a file, a mail, a mail's attachment) and its latest outcome:
    taken, duplicate, updated, unchanged, failed (``detail`` says why), deleted, kept,
    skipped. ``present`` rows are what the source holds now (the sync compares listings with
    them); their ``document_id`` is the document's origin."""

    __tablename__ = "source_items"
    __table_args__ = (
        Index("ix_source_items_source", "source_id", "present", "outcome"),
        Index("ix_source_items_document", "document_id"),
    )

    # uuid5 of source and key: keys are paths of any length, too long for an index.
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(ID)
    key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(200), default="")
    present: Mapped[bool] = mapped_column(default=True)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    document_id: Mapped[str | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL"), default=None
    )
    job_id: Mapped[str | None] = mapped_column(ID, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    filename: Mapped[str] = mapped_column(String(300), default="")
    # BigInteger: a file in a watched folder may be larger than 2 GiB (refused, but recorded).
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- monitoring: answer traces, feedback, experiments, drift reports (Alembic 0010) ------------
# Issue #27. A trace goes with its tenant (ON DELETE CASCADE) and with the documents it cites:
# the purge of a document removes them (``trace_documents``, no foreign key to documents so
# that a trace of a document deleted while it was written is still stored, then purged).


class TraceRow(Base):
    """One answer (or search) as it was served: the columns are what lists, filters and drift
    reports read; ``data`` holds the rest (passages with per-stage scores, the answer and its
    citations, stage latencies, token counts, what a replay needs)."""

    __tablename__ = "traces"
    __table_args__ = (
        Index("ix_traces_tenant_created", "tenant_id", "created_at"),
        Index("ix_traces_tenant_release", "tenant_id", "release_id", "created_at"),
        Index("ix_traces_experiment", "experiment_id", "arm"),
        Index("ix_traces_parent", "parent_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    route: Mapped[str] = mapped_column(String(16))  # search | ask | chat | openai | mcp
    caller: Mapped[str] = mapped_column(String(120))
    release_id: Mapped[str | None] = mapped_column(String(40), default=None)
    arm: Mapped[str] = mapped_column(String(16))  # production | canary | shadow | pinned
    experiment_id: Mapped[str | None] = mapped_column(ID, default=None)
    parent_id: Mapped[str | None] = mapped_column(ID, default=None)  # shadow: the served trace
    question: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    refused: Mapped[bool] = mapped_column()
    latency_ms: Mapped[float] = mapped_column(Float)
    top_score: Mapped[float | None] = mapped_column(Float, default=None)
    citations_dropped: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)  # 1 up, -1 down
    feedback_reason: Mapped[str] = mapped_column(Text, default="")
    corrected_answer: Mapped[str | None] = mapped_column(Text, default=None)
    rated_at: Mapped[datetime | None] = mapped_column(default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TraceDocumentRow(Base):
    """A document a trace retrieved or cited: the purge of that document removes the trace."""

    __tablename__ = "trace_documents"
    __table_args__ = (Index("ix_trace_documents_document", "document_id"),)

    trace_id: Mapped[str] = mapped_column(
        ForeignKey("traces.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[str] = mapped_column(ID, primary_key=True)


class TraceSettingsRow(Base):
    __tablename__ = "trace_settings"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    retention_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExperimentRow(Base):
    """A challenger release tried on a tenant's traffic: in shadow (answers computed and
    traced, not shown) or as a canary (``share`` of the callers, sticky per caller). At most
    one is running per tenant."""

    __tablename__ = "experiments"
    __table_args__ = (Index("ix_experiments_tenant_state", "tenant_id", "state"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    release_id: Mapped[str] = mapped_column(String(40))
    champion_id: Mapped[str | None] = mapped_column(String(40), default=None)
    mode: Mapped[str] = mapped_column(String(16))  # shadow | canary
    share: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(16))  # running | rolled_back | promoted | stopped
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    canary_since: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorReportRow(Base):
    """A drift report of a tenant (the daily job's, or one asked for), kept for the console."""

    __tablename__ = "monitor_reports"
    __table_args__ = (Index("ix_monitor_reports_tenant", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    alerts: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


# -- people and permissions: users, groups, sessions, access lists, audit heads (Alembic 0011) --
# Issue #19. Users and groups belong to a tenant; API keys (above) belong to a user. Access
# lists name principals by id (``user:<id>``, ``group:<id>``, ``everyone``).


class UserRow(Base):
    """A person (local password or single sign-on) or a service account (keys only)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "username"),
        UniqueConstraint("tenant_id", "oidc_issuer", "oidc_subject", name="uq_users_oidc"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    kind: Mapped[str] = mapped_column(String(16))  # user | service
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)  # granted in gedrag
    sso_roles: Mapped[list[str]] = mapped_column(JSON, default=list)  # from the last sign-in
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)  # argon2id
    oidc_issuer: Mapped[str | None] = mapped_column(String(300), default=None)
    oidc_subject: Mapped[str | None] = mapped_column(String(300), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(default=None)


class GroupRow(Base):
    __tablename__ = "user_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(16), default="local")  # local | sso
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MembershipRow(Base):
    """A user in a group: granted in gedrag (``local``) or by the identity provider's groups
    claim at the user's last sign-in (``sso``, replaced at each)."""

    __tablename__ = "group_members"
    __table_args__ = (Index("ix_group_members_user", "user_id"),)

    group_id: Mapped[str] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    origin: Mapped[str] = mapped_column(String(16), primary_key=True)


class SessionRow(Base):
    """A console or API session after a password or single sign-on; only its hash is kept."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    method: Mapped[str] = mapped_column(String(16))  # password | sso
    source: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class OidcLoginRow(Base):
    """A single sign-on under way: the state sent to the provider, its nonce and PKCE verifier
    (kept here, not in a cookie); consumed by the callback."""

    __tablename__ = "oidc_logins"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessListRow(Base):
    """A resource's own access list header: whether a document inherits its collection's."""

    __tablename__ = "access_lists"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # collection|document|source
    resource_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    inherit: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


class AccessEntryRow(Base):
    __tablename__ = "access_entries"
    __table_args__ = (Index("ix_access_entries_principal", "resource_id", "principal"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    resource_id: Mapped[str] = mapped_column(ID, primary_key=True)
    principal: Mapped[str] = mapped_column(String(48), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    permission: Mapped[int] = mapped_column(Integer)  # core.access.Permission


class AuditHeadRow(Base):
    """The last entry of a tenant's audit chain: appending locks this row (one writer at a
    time per tenant), and removing entries from the chain's end shows against it."""

    __tablename__ = "audit_heads"

    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class GraphReaderRow(Base):
    """The embedded graph store's copy of who may read a document (``stores.graph.
    relational``): expansion traverses only chunks of documents one of the caller's principals
    reads. No foreign key: the graph may live in another database than the catalog."""

    __tablename__ = "graph_readers"
    __table_args__ = (Index("ix_graph_readers_principal", "tenant_id", "principal"),)

    document_id: Mapped[str] = mapped_column(ID, primary_key=True)
    principal: Mapped[str] = mapped_column(String(48), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
