"""Sorting under ``/v1/sorting``: the tenant's vocabulary and settings, the review queue
("à trier"), each document's decision with its history, and the one-click actions (accept,
correct, undo, sort again). Listing documents by type, correspondent and field values is
``GET /v1/documents?type=...&correspondent=...&field.total_ttc_gte=100``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from core.domain import Tenant
from serving import auth
from serving.api import ERRORS, RT, current_tenant
from sorting.service import STATES, SortingService
from sorting.vocabulary import Entry, EntryKind
from stores.catalog.sorting import SortingEvent, SortingRecord

router = APIRouter(prefix="/v1/sorting", responses=ERRORS, tags=["sorting"])
Caller = Annotated[Tenant, Depends(current_tenant)]
ACTOR = "api"


def sorting_service(request: Request) -> SortingService:
    svc: SortingService = request.app.state.service.ingestion.sorting
    return svc


Sorting = Annotated[SortingService, Depends(sorting_service)]


# -- schemas ---------------------------------------------------------------------------------


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["none", "any", "all", "exact", "regex", "fuzzy"]
    pattern: str = Field(default="", max_length=1000)
    case_insensitive: bool = True
    target: Literal["text", "filename"] = "text"


class EntryCreate(BaseModel):
    """A vocabulary entry. ``key`` defaults to a slug of ``name``; ``auto: false`` = never
    assigned automatically (still suggested in the review queue)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["type", "correspondent", "tag", "field"]
    name: str = Field(min_length=1, max_length=200)
    key: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=2000)
    auto: bool = True
    rules: list[RuleBody] = Field(default_factory=list, max_length=20)
    collection: str | None = Field(
        default=None, description="Types: the collection their documents are filed into."
    )
    tags: list[str] = Field(default_factory=list, description="Types: tags given with them.")
    identifiers: list[str] = Field(
        default_factory=list, description="Correspondents: SIRET, SIREN, VAT numbers."
    )
    field_kind: (
        Literal["date", "amount", "currency", "reference", "iban", "period", "text"] | None
    ) = Field(default=None, description="Custom fields: their type.")
    types: list[str] = Field(
        default_factory=list, description="Custom fields: the types they apply to (all if none)."
    )


class EntryPublic(BaseModel):
    kind: str
    key: str
    name: str
    description: str
    auto: bool
    rules: list[dict[str, Any]]
    collection: str | None
    tags: list[str]
    identifiers: list[str]
    field_kind: str | None
    types: list[str]


class VocabularyPublic(BaseModel):
    types: list[EntryPublic]
    correspondents: list[EntryPublic]
    tags: list[EntryPublic]
    fields: list[EntryPublic]
    builtin_fields: dict[str, str] = Field(description="Fields gedrag reads itself, by type.")


class SettingsPublic(BaseModel):
    threshold: float = Field(description="Confidence at or above which labels are applied.")
    own_threshold: bool = Field(description="False: the platform's default applies.")
    enabled: bool
    examples_version: int


class SettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    threshold: float | None = Field(default=None, ge=0, le=1)
    reset_threshold: bool = Field(default=False, description="Back to the platform's default.")
    enabled: bool | None = None


class DecisionPublic(BaseModel):
    document_id: str
    state: str = Field(description="applied, review (à trier), confirmed or unsorted.")
    document_type: str | None = Field(description="The applied type (null while in review).")
    suggested_type: str | None = Field(description="What sorting suggests.")
    confidence: float | None
    reason: str = Field(description="rule, classifier, zero-shot, llm or user.")
    ranked: list[tuple[str, float]] = Field(description="The best types with probabilities.")
    issuer: str | None
    recipient: str | None
    tags: list[str]
    fields: dict[str, Any]
    label: str | None = Field(description="The type a user gave (a training example).")
    decided_by: str
    updated_at: datetime | None
    title: str | None = None


class EventPublic(BaseModel):
    at: datetime
    actor: str
    action: str
    confidence: float | None
    reason: str
    before: dict[str, Any]
    after: dict[str, Any]


class DecisionDetail(DecisionPublic):
    events: list[EventPublic]


class QueuePage(BaseModel):
    items: list[DecisionPublic]
    next_cursor: str | None
    counts: dict[str, int] = Field(description="Documents per state.")


class Correction(BaseModel):
    """What the user says the document is; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    document_type: str | None = None
    issuer: str | None = Field(default=None, description="A correspondent key ('' clears it).")
    recipient: str | None = Field(default=None, description="A correspondent key ('' clears).")
    tags: list[str] | None = None
    fields: dict[str, Any] | None = Field(default=None, description="Field values to set.")


def entry_public(e: Entry) -> EntryPublic:
    return EntryPublic.model_validate(e.to_dict())


def decision_public(r: SortingRecord, title: str | None = None) -> DecisionPublic:
    return DecisionPublic(
        document_id=r.document_id,
        state=r.state,
        document_type=r.document_type,
        suggested_type=r.document_type or r.detail.get("suggested"),
        confidence=r.confidence,
        reason=r.reason,
        ranked=[(str(k), float(p)) for k, p in r.detail.get("ranked", [])],
        issuer=r.issuer,
        recipient=r.recipient,
        tags=list(r.tags),
        fields=dict(r.fields),
        label=r.label,
        decided_by=r.decided_by,
        updated_at=r.updated_at,
        title=title,
    )


def event_public(e: SortingEvent) -> EventPublic:
    return EventPublic(
        at=e.at,
        actor=e.actor,
        action=e.action,
        confidence=e.confidence,
        reason=e.reason,
        before=e.before,
        after=e.after,
    )


# -- vocabulary and settings ------------------------------------------------------------------


@router.get("/vocabulary")
def get_vocabulary(svc: Sorting, tenant: Caller) -> VocabularyPublic:
    from sorting.fields import BUILTIN_FIELDS

    vocab = svc.vocabulary(tenant.id)
    return VocabularyPublic(
        types=[entry_public(e) for e in vocab.types],
        correspondents=[entry_public(e) for e in vocab.correspondents],
        tags=[entry_public(e) for e in vocab.tags],
        fields=[entry_public(e) for e in vocab.fields],
        builtin_fields=dict(BUILTIN_FIELDS),
    )


@router.post("/vocabulary", status_code=201)
def put_entry(svc: Sorting, tenant: Caller, body: EntryCreate, response: Response) -> EntryPublic:
    """Create an entry (201), or replace the one of that kind and key (200)."""
    entry, created = svc.put_entry(tenant.id, body.model_dump())
    if not created:
        response.status_code = 200
    return entry_public(entry)


@router.delete("/vocabulary/{kind}/{key}", status_code=204)
def delete_entry(svc: Sorting, tenant: Caller, kind: EntryKind, key: str) -> Response:
    svc.delete_entry(tenant.id, kind, key)
    return Response(status_code=204)


def _settings(svc: SortingService, tenant: Tenant) -> SettingsPublic:
    own = svc.tenant_settings(tenant.id)
    return SettingsPublic(
        threshold=svc.threshold(tenant.id),
        own_threshold=own.threshold is not None,
        enabled=own.enabled,
        examples_version=own.examples_version,
    )


@router.get("/settings")
def get_settings(svc: Sorting, tenant: Caller) -> SettingsPublic:
    return _settings(svc, tenant)


@router.patch("/settings")
def update_settings(svc: Sorting, tenant: Caller, body: SettingsUpdate) -> SettingsPublic:
    svc.set_tenant_settings(
        tenant.id,
        threshold=body.threshold,
        clear_threshold=body.reset_threshold,
        enabled=body.enabled,
    )
    return _settings(svc, tenant)


# -- decisions --------------------------------------------------------------------------------


@router.get("/queue")
def review_queue(
    request: Request,
    rt: RT,
    svc: Sorting,
    tenant: Caller,
    state: Annotated[str, Query(description=f"One of {', '.join(STATES)}.")] = "review",
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: str | None = None,
) -> QueuePage:
    """The documents waiting for a decision ("à trier"), newest first; ``state`` lists the
    applied, confirmed or unsorted ones instead."""
    if state not in STATES:
        from core.errors import InvalidInput

        raise InvalidInput(f"state: one of {', '.join(STATES)}", field="state")
    page = svc.repo.page(
        tenant.id, state=state, cursor=cursor, limit=min(limit, rt.settings.api.page_size_max)
    )
    hidden = set(auth.hidden_for(request))  # decisions on documents the caller may not read
    items = [r for r in page.items if r.document_id not in hidden]
    titles: dict[str, str | None] = {}
    for r in items:
        try:
            titles[r.document_id] = rt.catalog.documents.get(tenant.id, r.document_id).title
        except Exception:
            titles[r.document_id] = None
    return QueuePage(
        items=[decision_public(r, titles.get(r.document_id)) for r in items],
        next_cursor=page.next_cursor,
        counts=svc.repo.counts(tenant.id),
    )


def _detail(svc: SortingService, tenant: Tenant, document_id: str) -> DecisionDetail:
    record = svc.get(tenant.id, document_id)
    title = svc.rt.catalog.documents.get(tenant.id, document_id).title
    return DecisionDetail(
        **decision_public(record, title).model_dump(),
        events=[event_public(e) for e in svc.events(tenant.id, document_id)],
    )


@router.get("/documents/{document_id}")
def get_decision(svc: Sorting, tenant: Caller, document_id: str) -> DecisionDetail:
    """The document's sorting: decision, suggestion, fields and every event."""
    return _detail(svc, tenant, document_id)


@router.post("/documents/{document_id}/accept")
def accept(svc: Sorting, tenant: Caller, document_id: str) -> DecisionDetail:
    """Confirm the suggested type: applied, filed, and learned from."""
    svc.accept(tenant.id, document_id, actor=ACTOR)
    return _detail(svc, tenant, document_id)


@router.post("/documents/{document_id}/correct")
def correct(svc: Sorting, tenant: Caller, document_id: str, body: Correction) -> DecisionDetail:
    """Give the document its type (correspondents, tags, field values): applied, filed, and
    learned from — the next prediction takes it into account."""
    svc.correct(
        tenant.id,
        document_id,
        actor=ACTOR,
        document_type=body.document_type,
        issuer=body.issuer,
        recipient=body.recipient,
        tags=body.tags,
        fields=body.fields,
    )
    return _detail(svc, tenant, document_id)


@router.post("/documents/{document_id}/undo")
def undo(svc: Sorting, tenant: Caller, document_id: str) -> DecisionDetail:
    """Put back what the last decision changed; the document returns to the review queue."""
    svc.undo(tenant.id, document_id, actor=ACTOR)
    return _detail(svc, tenant, document_id)


@router.post("/documents/{document_id}/sort")
def sort_again(svc: Sorting, tenant: Caller, document_id: str) -> DecisionDetail:
    """Sort the document's indexed version again (after the vocabulary changed)."""
    svc.resort(tenant.id, document_id)
    return _detail(svc, tenant, document_id)
