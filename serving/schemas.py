"""HTTP schemas, in families: ``*Create`` in, ``*Public`` out, ``*Page`` for listings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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


class SearchFilters(BaseModel):
    """Narrow the documents searched; the caller's tenant always applies."""

    model_config = ConfigDict(extra="forbid")

    collections: list[str] | None = None
    tags: list[str] | None = Field(default=None, description="Documents with any of these tags.")
    metadata: dict[str, Any] | None = Field(default=None, description="Equality on each key.")
    document_ids: list[str] | None = None
    uploaded_after: datetime | None = None
    uploaded_before: datetime | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)


class SearchRequest(SearchFilters):
    query: str = Field(min_length=1, max_length=2000)


class PassagePublic(Public):
    n: int
    chunk_id: str
    document_id: str
    title: str
    version: int
    collection: str
    page_start: int | None
    page_end: int | None
    section_path: list[str]
    text: str
    score: float


class SearchResponse(BaseModel):
    passages: list[PassagePublic]
    timings_ms: dict[str, float] = Field(description="Per retrieval stage, and total.")


class AskRequest(SearchFilters):
    question: str = Field(min_length=1, max_length=2000)
    stream: bool = Field(default=False, description="Server-sent events: tokens, citations, done.")


class CitationPublic(Public):
    n: int
    chunk_id: str
    document_id: str
    title: str
    version: int
    page: int | None
    quote: str


class AskResponse(BaseModel):
    answer: str
    grounded: bool = Field(description="False when the documents do not answer.")
    citations: list[CitationPublic]
    passages: list[PassagePublic]
    question: str = Field(description="The standalone question that was searched.")
    timings_ms: dict[str, float]


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str = Field(max_length=20000)


class ChatRequest(SearchFilters):
    messages: list[ChatMessage] = Field(min_length=1, description="The last one is the question.")
    stream: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI-compatible; ``model`` may name a collection: ``gedrag`` or ``gedrag/<collection>``."""

    model_config = ConfigDict(extra="allow")

    model: str = "gedrag"
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
