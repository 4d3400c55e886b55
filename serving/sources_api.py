"""Sources over HTTP: a tenant's watched folders, SMB shares and IMAP mailboxes, their syncs
and every item's outcome; where a document came from.

Credentials go in (``connection.password``) and never come out: a source answers
``password_set`` instead. Every route is scoped to the caller's tenant. :func:`attach` wires
the sources into a process's Celery app: the round task and the beat entry, and in the
embedded mode (`gedrag up`) the ticker that stands in for beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from core.access import Permission
from core.domain import Tenant
from ingestion.celery_app import GedragCelery
from ingestion.tasks import CeleryExecutor
from serving import auth
from serving.api import ERRORS, current_tenant
from sources import tasks as source_tasks
from sources.config import SourceSpec
from sources.sync import Send, SourceUpdate, SyncService
from stores.catalog.models import utcnow
from stores.catalog.sources import OUTCOMES, Outcome, SourceRecord

router = APIRouter(prefix="/v1", responses={**ERRORS, 403: ERRORS[409]}, tags=["sources"])


@dataclass
class Sources:
    """A process's sync service and how it queues a round."""

    service: SyncService
    send: Send
    ticker: source_tasks.Ticker | None = None


def attach(celery: GedragCelery, *, embedded: bool) -> Sources:
    """Register the sources' tasks on ``celery``; ``embedded`` (one process holds the
    worker): no round can be running yet, and a ticker sends the beat's tick."""
    service = SyncService(celery.ingestion, CeleryExecutor(celery))
    settings = celery.settings.sources
    source_tasks.register(celery, lambda: service, tick_s=settings.tick_s)
    wired = Sources(service, source_tasks.sender(celery))
    if embedded:
        service.repo.release_leases()
        wired.ticker = source_tasks.Ticker(celery, settings.tick_s).start()
    return wired


def sources(request: Request) -> Sources:
    found: Sources = request.app.state.sources
    return found


Caller = Annotated[Tenant, Depends(current_tenant)]
Wired = Annotated[Sources, Depends(sources)]


# -- schemas ------------------------------------------------------------------------------


Status = Literal["new", "ok", "failing", "syncing", "paused"]


class SourcePublic(BaseModel):
    """A source as its tenant sees it (never its password)."""

    id: str
    name: str
    kind: Literal["folder", "smb", "imap"]
    collection: str
    tags: list[str]
    interval_s: int
    on_delete: Literal["delete", "trash", "keep"]
    connection: dict[str, Any] = Field(description="Where it reads from; no password.")
    password_set: bool
    status: Status = Field(
        description="paused, syncing (a round runs now), failing (the last round failed: "
        "last_error says why; retried with backoff), ok, or new (never synced)."
    )
    paused: bool
    failures: int = Field(description="Rounds failed in a row.")
    last_error: str | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_ok_at: datetime | None
    next_sync_at: datetime | None
    last_round: dict[str, Any] = Field(description="Outcomes of the last round and its time.")
    counts: dict[str, int] = Field(description="Items per outcome, all rounds.")
    created_at: datetime


class SourcesPage(BaseModel):
    items: list[SourcePublic]


class SourceItemPublic(BaseModel):
    key: str = Field(description="The item in its source: a path, a mail, a mail's part.")
    outcome: str = Field(description=", ".join(OUTCOMES))
    detail: str = Field(description="Why it failed, or what happened to it.")
    present: bool = Field(description="The source holds it now.")
    document_id: str | None
    filename: str
    size_bytes: int | None
    updated_at: datetime


class SourceItemsPage(BaseModel):
    items: list[SourceItemPublic]
    next_cursor: str | None


class SyncRequest(BaseModel):
    full: bool = Field(
        default=False,
        description="Start from an empty cursor: a mailbox reads its folder again (mails "
        "already taken are duplicates).",
    )


class OriginPublic(BaseModel):
    source_id: str
    source_name: str
    kind: str
    key: str
    updated_at: datetime


class OriginsPublic(BaseModel):
    items: list[OriginPublic]


def public(rec: SourceRecord, counts: dict[str, int]) -> SourcePublic:
    status: Status
    if rec.paused:
        status = "paused"  # a round still running ends; no other starts
    elif rec.running(utcnow()):
        status = "syncing"
    else:
        status = rec.state  # type: ignore[assignment]
    return SourcePublic(
        id=rec.id,
        name=rec.name,
        kind=rec.kind,  # type: ignore[arg-type]
        collection=rec.collection,
        tags=list(rec.tags),
        interval_s=rec.interval_s,
        on_delete=rec.on_delete,  # type: ignore[arg-type]
        connection=dict(rec.config),
        password_set=bool(rec.secret),
        status=status,
        paused=rec.paused,
        failures=rec.failures,
        last_error=rec.last_error,
        last_started_at=rec.last_started_at,
        last_finished_at=rec.last_finished_at,
        last_ok_at=rec.last_ok_at,
        next_sync_at=rec.next_sync_at,
        last_round=rec.last_round,
        counts=counts,
        created_at=rec.created_at,
    )


def _one(s: Sources, rec: SourceRecord) -> SourcePublic:
    return public(rec, s.service.repo.counts([rec.id])[rec.id])


# -- routes -------------------------------------------------------------------------------


@router.get("/sources")
def list_sources(s: Wired, tenant: Caller) -> SourcesPage:
    """The tenant's sources: state, last sync, next sync, counts per outcome, last error."""
    recs = s.service.repo.all(tenant.id)
    counts = s.service.repo.counts([r.id for r in recs])
    return SourcesPage(items=[public(r, counts[r.id]) for r in recs])


def _may_write(request: Request, collection: str | None) -> None:
    """A source pours documents into its collection: its author must be allowed to write
    there (access lists, 403 otherwise), as for an upload."""
    if collection is not None:
        rt = request.app.state.runtime
        auth.require_collection(rt, auth.caller(request), collection, Permission.WRITE)


@router.post("/sources", status_code=201)
def create_source(request: Request, s: Wired, tenant: Caller, spec: SourceSpec) -> SourcePublic:
    """A new source, synced at once then every ``interval_s``. A watched folder must lie
    under ``GEDRAG_SOURCES__FOLDER_ROOTS`` (403 otherwise); 409 when the name is taken; 403 when
    the caller may not write its collection."""
    _may_write(request, spec.collection)
    return _one(s, s.service.add(tenant.id, spec))


@router.get("/sources/{source_id}")
def get_source(s: Wired, tenant: Caller, source_id: str) -> SourcePublic:
    return _one(s, s.service.repo.get(tenant.id, source_id))


@router.patch("/sources/{source_id}")
def update_source(
    request: Request, s: Wired, tenant: Caller, source_id: str, patch: SourceUpdate
) -> SourcePublic:
    """Change the schedule, target, deletion rule or connection (a ``password`` given replaces
    the stored one)."""
    _may_write(request, patch.collection)
    return _one(s, s.service.update(tenant.id, source_id, patch))


@router.delete("/sources/{source_id}", status_code=204)
def delete_source(s: Wired, tenant: Caller, source_id: str) -> Response:
    """Forget the source and its items; its documents stay."""
    s.service.remove(tenant.id, source_id)
    return Response(status_code=204)


@router.post("/sources/{source_id}/sync", status_code=202)
async def sync_source(
    s: Wired,
    tenant: Caller,
    source_id: str,
    body: Annotated[SyncRequest | None, Body()] = None,
) -> SourcePublic:
    """Sync now: a round starts at once (or right after the one running); follow it with
    ``GET /v1/sources/{id}``."""
    full = body.full if body is not None else False

    def run() -> SourcePublic:
        s.service.request(tenant.id, source_id, full=full)
        s.service.dispatch(source_id, s.send)
        return _one(s, s.service.repo.get(tenant.id, source_id))

    return await run_in_threadpool(run)


@router.post("/sources/{source_id}/pause")
def pause_source(s: Wired, tenant: Caller, source_id: str) -> SourcePublic:
    return _one(s, s.service.pause(tenant.id, source_id, True))


@router.post("/sources/{source_id}/resume")
def resume_source(s: Wired, tenant: Caller, source_id: str) -> SourcePublic:
    """Resume a paused source: it syncs at the next tick."""
    return _one(s, s.service.pause(tenant.id, source_id, False))


@router.get("/sources/{source_id}/items")
def source_items(
    request: Request,
    s: Wired,
    tenant: Caller,
    source_id: str,
    outcome: Annotated[Outcome | None, Query()] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SourceItemsPage:
    """The source's items, most recently changed first, filtered by outcome."""
    s.service.repo.get(tenant.id, source_id)  # 404 for another tenant's source
    page = s.service.repo.page(tenant.id, source_id, outcome=outcome, cursor=cursor, limit=limit)
    hidden = set(auth.hidden_for(request))  # items whose document the caller may not read
    return SourceItemsPage(
        items=[
            SourceItemPublic(
                key=i.key,
                outcome=i.outcome,
                detail=i.detail,
                present=i.present,
                document_id=i.document_id,
                filename=i.filename,
                size_bytes=i.size_bytes,
                updated_at=i.updated_at,
            )
            for i in page.items
            if i.document_id is None or i.document_id not in hidden
        ],
        next_cursor=page.next_cursor,
    )


@router.get("/documents/{document_id}/origins", tags=["documents"])
def document_origins(s: Wired, tenant: Caller, document_id: str) -> OriginsPublic:
    """The source items a document comes from (one per place that holds its bytes)."""
    s.service.rt.catalog.documents.get(tenant.id, document_id)  # 404 first
    return OriginsPublic(
        items=[
            OriginPublic(
                source_id=o.source_id,
                source_name=o.source_name,
                kind=o.kind,
                key=o.key,
                updated_at=o.updated_at,
            )
            for o in s.service.repo.origins(tenant.id, document_id)
        ]
    )
