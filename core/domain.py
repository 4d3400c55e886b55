"""Domain types shared by every tier: what a tenant, document, version and job are.

These are plain frozen dataclasses returned by the catalog; the HTTP schemas in ``serving`` are
built from them. States are ``StrEnum`` so they serialise as their value everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class DocumentStatus(StrEnum):
    """Lifecycle of a document, derived from its current version and pending deletion."""

    QUEUED = "queued"
    PROCESSING = "processing"
    # Findable by its words, its entities and its graph; its meaning vectors are being
    # computed (progressive indexing, issue #22). Readers already see this version.
    SEARCHABLE = "searchable"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    TRASHED = "trashed"  # in the trash: hidden from lists, search and answers; restorable


# Statuses readers never see (lists, search, answers); a trashed document keeps its data.
HIDDEN_STATUSES = (DocumentStatus.DELETING, DocumentStatus.TRASHED)


class JobKind(StrEnum):
    INGEST = "ingest"
    DELETE = "delete"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as listed: never the key itself, only its display prefix."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    # People (issue #19): the user the key acts for, its scopes, when it expires.
    user_id: str | None = None
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Collection:
    id: str
    tenant_id: str
    name: str
    description: str
    created_at: datetime
    document_count: int = 0


@dataclass(frozen=True)
class Version:
    id: str
    document_id: str
    number: int
    sha256: str
    size_bytes: int
    media_type: str
    filename: str
    status: DocumentStatus
    chunk_count: int | None
    entity_count: int | None
    created_at: datetime
    error: str | None = None  # why its ingestion failed, when it did
    # What its ingestion left out or changed (hidden text, replaced bytes, a cap reached).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk as the catalog records it (the reference the other stores are checked against)."""

    id: str
    tenant_id: str
    document_id: str
    version_id: str
    ordinal: int
    text: str
    section_path: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    language: str
    token_count: int


@dataclass(frozen=True)
class Document:
    id: str
    tenant_id: str
    collection: str
    title: str
    status: DocumentStatus
    current_version: int
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    versions: list[Version] = field(default_factory=list)
    active_version: int | None = None

    @property
    def current(self) -> Version | None:
        return next((v for v in self.versions if v.number == self.current_version), None)

    @property
    def error(self) -> str | None:
        """Why the current version's ingestion failed, when it did."""
        current = self.current
        return None if current is None else current.error

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the current version's ingestion left out or changed."""
        current = self.current
        return () if current is None else current.warnings


@dataclass(frozen=True)
class Job:
    id: str
    tenant_id: str
    kind: JobKind
    document_id: str
    version_id: str | None
    state: JobState
    stage: str
    progress: float
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    warnings: tuple[str, ...] = ()  # what the user should know about a job that succeeded


@dataclass(frozen=True)
class Usage:
    """What a tenant uploaded in a window (quotas): uploads (documents and versions), their
    bytes, the chunks they made, and when the oldest counted upload happened."""

    uploads: int
    bytes: int
    chunks: int
    oldest: datetime | None = None


@dataclass(frozen=True)
class FieldCondition:
    """A filter on one sorting field (``sorting.fields``): ``op`` is ``eq``, ``gt``, ``gte``,
    ``lt`` or ``lte``; ``value`` a number (amounts; dates as epoch seconds) or a text (eq)."""

    key: str
    op: str
    value: float | str


@dataclass(frozen=True)
class DocumentFilter:
    """Listing filters; every field narrows, ``None`` means any."""

    collection: str | None = None
    tag: str | None = None
    status: DocumentStatus | None = None
    metadata: dict[str, Any] | None = None
    title_contains: str | None = None
    # Sorting (issue #17): the document's type, a correspondent (issuer or recipient), fields.
    document_type: str | None = None
    correspondent: str | None = None
    fields: tuple[FieldCondition, ...] = ()
    # Access lists (issue #19): only documents one of these principals may read; None: all.
    readable_by: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Page:
    items: list[Document]
    next_cursor: str | None


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None
