"""HTTP schemas, in families: ``*Create`` in, ``*Public`` out, ``*Page`` for listings."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.domain import DocumentStatus, JobKind, JobState

_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _not_a_number(value: Any) -> Any:
    """A date-time is an ISO 8601 string: 0 or "0.5" (lax pydantic: seconds since 1970) is
    refused, in a JSON body or a query string."""
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2024-01-31T00:00:00Z")
    return value


# Strict request models still parse date-times from JSON strings (pydantic's strict mode would
# want datetime objects); numbers are refused.
IsoDateTime = Annotated[datetime, Field(strict=False), BeforeValidator(_not_a_number)]


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
    error: str | None = Field(description="Why this version's ingestion failed, when it did.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What its ingestion left out or changed: bytes that could not be decoded, "
        "hidden text not indexed, chunks beyond a cap, passages flagged as addressing an AI "
        "assistant.",
    )


class VersionsPublic(BaseModel):
    items: list[VersionPublic] = Field(description="Oldest first.")


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
    error: str | None = Field(
        description="Why the current version's ingestion failed (status failed), else null."
    )
    warnings: list[str] = Field(
        default_factory=list, description="The current version's ingestion warnings."
    )


class DocumentsPage(BaseModel):
    items: list[DocumentPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class DocumentUpdate(BaseModel):
    """Fields to replace; omitted fields are kept. Tags and metadata are replaced whole."""

    # strict: JSON types as the schema says (0 is no boolean, no date; "5" no number).
    model_config = ConfigDict(extra="forbid", strict=True)

    title: str | None = Field(default=None, min_length=1, max_length=300)
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    collection: str | None = Field(
        default=None,
        description="Move the document to this collection (created if missing); 409 when a "
        "document there holds the same content. Nothing is embedded again.",
    )


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
    warnings: list[str] = Field(
        default_factory=list, description="What a user should know about a job that succeeded."
    )


class JobDeletion(JobPublic):
    """The deletion job, with ``job_id`` and ``document_id`` where an upload has them."""

    job_id: str = Field(description="The same as ``id``: follow it at /v1/jobs/{job_id}.")


class JobsPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        min_length=1,
        max_length=100,
        description="Letters, digits, spaces, '-', '_' and '.', beginning with a letter or digit.",
    )
    description: str = Field(default="", max_length=2000)


class CollectionPublic(Public):
    name: str
    description: str
    created_at: datetime
    document_count: int


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorPublic(BaseModel):
    """An error of the OpenAI-compatible routes, in OpenAI's shape (its SDKs parse it)."""

    error: OpenAIError


class ErrorPublic(BaseModel):
    error: str
    detail: str
    field: str | None = None


class SearchFilters(BaseModel):
    """Narrow the documents searched; the caller's tenant always applies."""

    # strict: "stream": 0 and "uploaded_before": 0 are refused (422), as the schema's
    # boolean and date-time types say.
    model_config = ConfigDict(extra="forbid", strict=True)

    collections: list[str] | None = None
    tags: list[str] | None = Field(default=None, description="Documents with any of these tags.")
    metadata: dict[str, Any] | None = Field(default=None, description="Equality on each key.")
    document_ids: list[str] | None = None
    uploaded_after: IsoDateTime | None = None
    uploaded_before: IsoDateTime | None = None
    document_types: list[str] | None = Field(
        default=None, description="Documents sorted as any of these types."
    )
    correspondents: list[str] | None = Field(
        default=None, description="Documents issued by or sent to any of these correspondents."
    )
    fields: dict[str, str | float] | None = Field(
        default=None,
        description='Sorting fields, as GET /v1/documents reads them: {"total_ttc_gte": 100, '
        '"date_lt": "2024-06-01", "reference": "F-12"} (built-in fields).',
    )
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
    suspicious: bool = Field(
        default=False,
        description="The passage addresses an AI assistant (e.g. 'ignore previous "
        "instructions'): shown, never given as an answer.",
    )


class SearchResponse(BaseModel):
    passages: list[PassagePublic]
    timings_ms: dict[str, float] = Field(description="Per retrieval stage, and total.")
    trace_id: str | None = Field(
        default=None, description="Its trace (GET /v1/traces/{id}); null when tracing is off."
    )


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
    trace_id: str | None = Field(
        default=None,
        description="Its trace: rate the answer with POST /v1/traces/{id}/feedback; null when "
        "tracing is off.",
    )


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True)

    role: Literal["user", "assistant", "system"]
    content: str = Field(max_length=20000)


class ChatRequest(SearchFilters):
    messages: list[ChatMessage] = Field(min_length=1, description="The last one is the question.")
    stream: bool = False


class StreamOptions(BaseModel):
    include_usage: bool = Field(
        default=False, description="Send a last chunk with the token counts (OpenAI's option)."
    )


class FeedbackCreate(BaseModel):
    """A person's judgement of an answer."""

    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    reason: str = Field(default="", max_length=2000, description="Why, in a few words.")
    corrected_answer: str | None = Field(
        default=None,
        min_length=1,
        max_length=20000,
        description="The answer it should have been (it becomes the reference of "
        "`gedrag eval suite from-feedback`).",
    )


class ChatFeedback(FeedbackCreate):
    trace_id: str = Field(description="The ``trace_id`` of the answer rated.")


class ChatCompletionRequest(BaseModel):
    """OpenAI-compatible. ``model`` is one of ``GET /v1/models``: ``gedrag`` (every collection),
    ``gedrag/<collection>``, ``gedrag@<release>`` or ``gedrag@<release>/<collection>``; any
    other answers 404 ``model_not_found``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(default="gedrag", strict=True)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    user: str | None = Field(
        default=None,
        max_length=200,
        description="OpenAI's end-user id: a canary release is sticky to it (default: the key).",
    )
    feedback: ChatFeedback | None = Field(
        default=None,
        description="gedrag's extra field: feedback on an earlier answer (by its trace_id), "
        "recorded before this question is answered.",
    )


class ModelPublic(BaseModel):
    """One model of ``GET /v1/models``, in OpenAI's shape."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time the collection or release was created.")
    owned_by: str


class ModelsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]
