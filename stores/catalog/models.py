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
