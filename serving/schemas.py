"""HTTP schemas, in families: ``*Create`` in, ``*Public`` out, ``*Page`` for listings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.domain import DocumentStatus, JobKind, JobState


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class VersionPublic(Public):
    number: int
    sha256: str
    size_bytes: int
    media_type: str
    filename: str
    status: DocumentStatus
    chunk_count: int | None
    entity_count: int | None
    created_at: datetime


class DocumentPublic(Public):
    id: str
    collection: str
    title: str
    status: DocumentStatus
    current_version: int
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    versions: list[VersionPublic]


class DocumentsPage(BaseModel):
    items: list[DocumentPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class DocumentUpdate(BaseModel):
    """Fields to replace; omitted fields are kept. Tags and metadata are replaced whole."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class UploadPublic(BaseModel):
    """Outcome of one uploaded file."""

    document_id: str
    version: int
    job_id: str | None = Field(description="The ingestion job; null when nothing was queued.")
    duplicate: bool = Field(description="True when identical content already existed.")
    filename: str
    media_type: str
    status: DocumentStatus


class UploadsPublic(BaseModel):
    items: list[UploadPublic]


class JobPublic(Public):
    id: str
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


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)


class CollectionPublic(Public):
    name: str
    description: str
    created_at: datetime
    document_count: int


class ErrorPublic(BaseModel):
    error: str
    detail: str
    field: str | None = None
