"""Records lifecycle over HTTP: the trash, legal holds, retention policies, deletion
certificates, subject-access requests (GDPR), the tenant's records settings and audit trail.

Every route is scoped to the caller's tenant. Actions that destroy or unfreeze (purge now,
release a hold, write a retention policy, erase or redact for GDPR, change the trash period)
need an administrator key: one whose name ``GEDRAG_RECORDS__ADMIN_KEYS`` lists (a tenant's
first key is one); others answer 403. Every action is audited with the key that acted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from core.domain import Tenant
from core.errors import Forbidden, InvalidInput
from core.records import Anchor, Disposal, Period, Selector
from ingestion.records import Due, PolicyChange, RecordsService, public_certificate
from serving import auth
from serving.api import ERRORS, current_tenant
from serving.documents import DocumentService
from serving.schemas import DocumentPublic, JobDeletion, JobPublic, Public
from stores.catalog.models import utcnow

router = APIRouter(prefix="/v1", responses={**ERRORS, 403: ERRORS[409]})


def records_service(request: Request) -> RecordsService:
    """One records service per app, over the document service's ingestion and executor."""
    found: RecordsService | None = getattr(request.app.state, "records", None)
    if found is None:
        svc: DocumentService = request.app.state.service
        found = RecordsService(svc.ingestion, svc.executor)
        request.app.state.records = found
    return found


@dataclass(frozen=True)
class Actor:
    """The tenant, the caller as the audit trail names it and whether it administers records
    (the admin scope: an administrator, or a key GEDRAG_RECORDS__ADMIN_KEYS names)."""

    tenant: Tenant
    name: str
    admin: bool
    readable_by: tuple[str, ...] | None = None

    def require_admin(self, action: str) -> None:
        if not self.admin:
            raise Forbidden(
                f"{action} needs an administrator (the admin role, or a key whose name "
                "GEDRAG_RECORDS__ADMIN_KEYS lists; a tenant's first key is one)"
            )


async def actor(request: Request, tenant: Annotated[Tenant, Depends(current_tenant)]) -> Actor:
    who = auth.caller(request)
    # A key is named as before people existed (key:<name>:<prefix>); a session by its user.
    name = who.via if who.key_name is not None else who.actor
    return Actor(tenant, name, who.admin, who.read_filter)


Who = Annotated[Actor, Depends(actor)]
Records = Annotated[RecordsService, Depends(records_service)]


# -- schemas ------------------------------------------------------------------------------


class TrashEntryPublic(Public):
    document_id: str
    title: str
    collection: str
    trashed_at: datetime
    purge_after: datetime = Field(description="Restorable until then; purged by the daily run.")
    trashed_by: str
    reason: str


class TrashPage(BaseModel):
    items: list[TrashEntryPublic]


class PurgePublic(JobDeletion):
    """The purge job (follow it at /v1/jobs/{job_id}) and the certificate it completes."""

    certificate_id: str


class SelectorModel(BaseModel):
    """Which documents: every field given must match (tags: any of)."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] = Field(default_factory=list, max_length=10_000)
    collection: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=100)
    type: str | None = Field(
        default=None, description="Document type: metadata 'type' equal to it, or a tag."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description='Equality per key, e.g. {"correspondent": "ACME"}.'
    )
    title_contains: str | None = None

    def selector(self) -> Selector:
        return Selector(
            document_ids=tuple(self.document_ids),
            collection=self.collection,
            tags=tuple(self.tags),
            type=self.type,
            metadata=dict(self.metadata),
            title_contains=self.title_contains,
        )

    @classmethod
    def of(cls, selector: Selector) -> SelectorModel:
        return cls.model_validate(selector.to_dict())


class HoldCreate(SelectorModel):
    name: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=2000)
    placed_by: str | None = Field(
        default=None, max_length=100, description="Who places it; default: the calling key."
    )


class HoldPublic(BaseModel):
    id: str
    name: str
    reason: str
    placed_by: str
    selector: SelectorModel
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    active: bool
    documents: int | None = Field(default=None, description="Documents it covers now.")


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    selector: SelectorModel
    years: int = Field(default=0, ge=0, le=200)
    months: int = Field(default=0, ge=0, le=2400)
    days: int = Field(default=0, ge=0, le=100_000)
    anchor: Anchor = Field(
        default=Anchor.DOCUMENT_DATE,
        description="document_date: metadata 'date' (else the upload time); upload.",
    )
    action: Disposal = Disposal.PURGE
    confirm: bool = Field(
        default=False,
        description="Confirm that existing documents the change disposes of at once go.",
    )


class DuePublic(BaseModel):
    document_id: str
    title: str
    collection: str
    policy_id: str
    policy: str
    due_at: datetime
    action: Disposal
    confirmed: bool
    holds: list[str]

    @classmethod
    def of(cls, d: Due) -> DuePublic:
        return cls.model_validate(d.to_dict())


class PolicyPublic(BaseModel):
    id: str
    name: str
    selector: SelectorModel
    years: int
    months: int
    days: int
    period: str
    anchor: Anchor
    action: Disposal
    confirmed: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class PolicyChangePublic(BaseModel):
    policy: PolicyPublic
    pending_confirmation: bool = Field(
        description="It would dispose of existing documents at once: it disposes of nothing "
        "until an administrator confirms it."
    )
    would_dispose: list[DuePublic]


class PreviewPublic(BaseModel):
    at: datetime
    due: list[DuePublic] = Field(description="What the daily run disposes of by then.")
    held: list[DuePublic] = Field(description="Due, but a legal hold keeps them.")
    pending: list[DuePublic] = Field(description="Due under a policy awaiting confirmation.")


class SubjectRequest(BaseModel):
    """A person, by terms: a name, an email address, an identifier."""

    model_config = ConfigDict(extra="forbid")

    terms: list[str] = Field(min_length=1, max_length=20)


class ExportRequest(SubjectRequest):
    format: Literal["zip", "json"] = "zip"
    originals: bool = Field(default=True, description="zip: add the documents' originals.")


class EraseRequest(SubjectRequest):
    confirm: bool = Field(
        default=False, description="Must be true: every document found is purged."
    )


class RecordsSettingsPublic(BaseModel):
    trash_days: int = Field(ge=0, le=3650, strict=True)  # false is no number of days


class AuditPublic(Public):
    id: str
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


# -- the trash ----------------------------------------------------------------------------


@router.delete("/documents/{document_id}", tags=["documents"])
def trash_document(records: Records, who: Who, document_id: str) -> TrashEntryPublic:
    """Move the document to the trash: it leaves lists, search and answers at once and can
    be restored until ``purge_after`` (409 ``held`` under a legal hold)."""
    entry = records.trash(who.tenant.id, document_id, actor=who.name)
    return TrashEntryPublic.model_validate(entry)


@router.get("/trash", tags=["records"])
def list_trash(records: Records, who: Who) -> TrashPage:
    """The tenant's trash, newest first."""
    items = records.records.trashed(who.tenant.id, readable_by=who.readable_by)
    return TrashPage(items=[TrashEntryPublic.model_validate(e) for e in items])


@router.post("/documents/{document_id}/restore", tags=["records"])
def restore_document(records: Records, who: Who, document_id: str) -> DocumentPublic:
    """Take a document out of the trash (409 once its purge began)."""
    return DocumentPublic.model_validate(
        records.restore(who.tenant.id, document_id, actor=who.name)
    )


@router.delete("/trash/{document_id}", status_code=202, tags=["records"])
def purge_document(records: Records, who: Who, document_id: str) -> PurgePublic:
    """Purge a document of the trash now (administrators): every store, with a certificate."""
    who.require_admin("purging now")
    job, cert = records.purge_from_trash(who.tenant.id, document_id, actor=who.name)
    return PurgePublic.model_validate(
        {**JobPublic.model_validate(job).model_dump(), "job_id": job.id, "certificate_id": cert.id}
    )


# -- certificates -------------------------------------------------------------------------


@router.get("/certificates", tags=["records"])
def list_certificates(
    records: Records,
    who: Who,
    document_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Deletion and redaction certificates, newest first."""
    found = records.records.certificates(who.tenant.id, document_id=document_id, limit=limit)
    return [public_certificate(c) for c in found]


@router.get("/certificates/{certificate_id}", tags=["records"])
def get_certificate(records: Records, who: Who, certificate_id: str) -> dict[str, Any]:
    """What a purge removed from each store (counts before and after) and the SHA-256 of the
    removed originals; ``state`` says how far a running purge got."""
    return public_certificate(records.records.certificate(who.tenant.id, certificate_id))


# -- legal holds --------------------------------------------------------------------------


def _hold(records: RecordsService, tenant: Tenant, hold_id: str, *, count: bool) -> HoldPublic:
    hold = records.records.hold(tenant.id, hold_id)
    n = len(records.held_documents(tenant.id, hold)) if count and hold.active else None
    return HoldPublic(
        id=hold.id,
        name=hold.name,
        reason=hold.reason,
        placed_by=hold.placed_by,
        selector=SelectorModel.of(hold.selector),
        created_at=hold.created_at,
        released_at=hold.released_at,
        released_by=hold.released_by,
        active=hold.active,
        documents=n,
    )


@router.post("/holds", status_code=201, tags=["records"])
def place_hold(records: Records, who: Who, body: HoldCreate) -> HoldPublic:
    """Place a legal hold on documents, a collection, tags, a type, metadata (a
    correspondent) or a saved query (title and the other fields)."""
    hold = records.place_hold(
        who.tenant.id,
        name=body.name,
        reason=body.reason,
        actor=body.placed_by or who.name,
        selector=body.selector(),
    )
    return _hold(records, who.tenant, hold.id, count=True)


@router.get("/holds", tags=["records"])
def list_holds(records: Records, who: Who, active: bool = False) -> list[HoldPublic]:
    holds = records.records.holds(who.tenant.id, active_only=active)
    return [_hold(records, who.tenant, h.id, count=False) for h in holds]


@router.get("/holds/{hold_id}", tags=["records"])
def get_hold(request: Request, records: Records, who: Who, hold_id: str) -> dict[str, Any]:
    """The hold and the documents it covers now."""
    hold = _hold(records, who.tenant, hold_id, count=False)
    held = records.held_documents(who.tenant.id, records.records.hold(who.tenant.id, hold_id))
    # A hold covers documents the caller may not read: counted, never named.
    hidden = set(auth.hidden_for(request))
    found = [d for d in held if d.id not in hidden]
    return {
        **hold.model_dump(mode="json"),
        "documents": len(held) if hold.active else None,
        "items": [
            {"document_id": d.id, "title": d.title, "collection": d.collection}
            for d in (found if hold.active else [])
        ],
    }


@router.post("/holds/{hold_id}/release", tags=["records"])
def release_hold(records: Records, who: Who, hold_id: str) -> HoldPublic:
    """Release a hold (administrators)."""
    who.require_admin("releasing a legal hold")
    records.release_hold(who.tenant.id, hold_id, actor=who.name)
    return _hold(records, who.tenant, hold_id, count=False)


# -- retention ----------------------------------------------------------------------------


def _policy(change: PolicyChange) -> PolicyChangePublic:
    p = change.policy
    return PolicyChangePublic(
        policy=_policy_public(p),
        pending_confirmation=change.pending,
        would_dispose=[DuePublic.of(d) for d in change.would_dispose],
    )


def _policy_public(p: Any) -> PolicyPublic:
    return PolicyPublic(
        id=p.id,
        name=p.name,
        selector=SelectorModel.of(p.selector),
        years=p.period.years,
        months=p.period.months,
        days=p.period.days,
        period=str(p.period),
        anchor=p.anchor,
        action=p.action,
        confirmed=p.confirmed,
        created_by=p.created_by,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


def _save(
    records: RecordsService,
    who: Actor,
    body: PolicyCreate,
    response: Response,
    policy_id: str | None,
) -> PolicyChangePublic:
    who.require_admin("writing a retention policy")
    change = records.save_policy(
        who.tenant.id,
        name=body.name,
        selector=body.selector.selector(),
        period=Period(body.years, body.months, body.days),
        anchor=body.anchor,
        action=body.action,
        confirm=body.confirm,
        actor=who.name,
        policy_id=policy_id,
    )
    if change.pending:
        response.status_code = 202  # saved, disposing of nothing until confirmed
    return _policy(change)


@router.get("/retention/policies", tags=["records"])
def list_policies(records: Records, who: Who) -> list[PolicyPublic]:
    return [_policy_public(p) for p in records.records.policies(who.tenant.id)]


@router.post("/retention/policies", status_code=201, tags=["records"])
def create_policy(
    records: Records, who: Who, body: PolicyCreate, response: Response
) -> PolicyChangePublic:
    """Create a policy (administrators). 202 with ``pending_confirmation`` when it would
    dispose of existing documents at once: send it again with ``confirm: true``, or confirm
    it, to let it."""
    return _save(records, who, body, response, None)


@router.put("/retention/policies/{policy_id}", tags=["records"])
def change_policy(
    records: Records, who: Who, policy_id: str, body: PolicyCreate, response: Response
) -> PolicyChangePublic:
    """Change a policy (administrators); the same confirmation rule as creation."""
    return _save(records, who, body, response, policy_id)


@router.post("/retention/policies/{policy_id}/confirm", tags=["records"])
def confirm_policy(records: Records, who: Who, policy_id: str) -> PolicyChangePublic:
    """Let a pending policy dispose of what it selects (administrators)."""
    who.require_admin("confirming a retention policy")
    return _policy(records.confirm_policy(who.tenant.id, policy_id, actor=who.name))


@router.delete("/retention/policies/{policy_id}", status_code=204, tags=["records"])
def delete_policy(records: Records, who: Who, policy_id: str) -> Response:
    who.require_admin("deleting a retention policy")
    records.delete_policy(who.tenant.id, policy_id, actor=who.name)
    return Response(status_code=204)


@router.get("/retention/preview", tags=["records"])
def retention_preview(
    records: Records,
    who: Who,
    within_days: Annotated[int, Query(ge=0, le=36_500)] = 0,
) -> PreviewPublic:
    """The dry run: what the daily run would dispose of within ``within_days`` days (0: now),
    and what holds and pending confirmations keep."""
    at = utcnow()
    found = records.preview(who.tenant.id, within_days=within_days, at=at)
    return PreviewPublic(
        at=at,
        due=[DuePublic.of(d) for d in found if d.confirmed and not d.holds],
        held=[DuePublic.of(d) for d in found if d.holds],
        pending=[DuePublic.of(d) for d in found if not d.confirmed and not d.holds],
    )


@router.post("/records/run-daily", tags=["records"])
def run_daily(records: Records, who: Who) -> dict[str, Any]:
    """Run the tenant's daily run now (administrators): purges the trash period released,
    applies retention, resumes unfinished purges."""
    who.require_admin("running the daily run")
    return records.run_daily(tenant_id=who.tenant.id).to_dict()


# -- subject-access requests (GDPR) -------------------------------------------------------


@router.post("/subjects/search", tags=["records"])
def subject_search(
    request: Request, records: Records, who: Who, body: SubjectRequest
) -> dict[str, Any]:
    """Every document and chunk that mentions the person (entity graph, BM25 index, and a
    scan of every chunk record, title and metadata); the terms travel in the body, never in
    a URL."""
    hidden = auth.hidden_for(request)
    found = records.subjects.find(who.tenant.id, body.terms, actor=who.name, hidden=hidden)
    return found.to_dict()


@router.post(
    "/subjects/export",
    tags=["records"],
    response_model=None,
    responses={200: {"content": {"application/zip": {}, "application/json": {}}}},
)
def subject_export(
    request: Request, records: Records, who: Who, body: ExportRequest
) -> Response | dict[str, Any]:
    """What the tenant's documents hold about the person: a zip (report.json and the
    documents' originals) or the JSON report."""
    hidden = auth.hidden_for(request)
    report = records.subjects.find(who.tenant.id, body.terms, actor=who.name, hidden=hidden)
    if body.format == "json":
        records.subjects.export(report, actor=who.name, originals=False)
        return report.to_dict()
    data = records.subjects.export(report, actor=who.name, originals=body.originals)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="subject-{report.request_id}.zip"'},
    )


@router.post("/subjects/erase", status_code=202, tags=["records"])
def subject_erase(records: Records, who: Who, body: EraseRequest) -> dict[str, Any]:
    """Purge every document that mentions the person, each with a certificate
    (administrators, ``confirm: true``); held documents are refused and listed."""
    who.require_admin("erasing for a subject request")
    if not body.confirm:
        raise InvalidInput(
            "erasure purges every document found: send confirm: true", field="confirm"
        )
    report = records.subjects.find(who.tenant.id, body.terms, actor=who.name)
    done = records.subjects.erase(report, actor=who.name)
    return {"request_id": done.request_id, "purged": done.certificates, "refused": done.refused}


@router.post("/subjects/redact", tags=["records"])
def subject_redact(records: Records, who: Who, body: SubjectRequest) -> dict[str, Any]:
    """Replace the person's terms by ``[REDACTED]`` in a new version of every document that
    mentions them, and remove the older versions from every store, with a certificate each
    (administrators); held documents are refused."""
    who.require_admin("redacting for a subject request")
    report = records.subjects.find(who.tenant.id, body.terms, actor=who.name)
    return {
        "request_id": report.request_id,
        "documents": records.subjects.redact(report, actor=who.name),
    }


# -- settings and audit -------------------------------------------------------------------


@router.get("/records/settings", tags=["records"])
def get_settings(records: Records, who: Who) -> RecordsSettingsPublic:
    return RecordsSettingsPublic(trash_days=records.trash_days(who.tenant.id))


@router.put("/records/settings", tags=["records"])
def put_settings(records: Records, who: Who, body: RecordsSettingsPublic) -> RecordsSettingsPublic:
    """The tenant's trash period in days (administrators); entries already in the trash keep
    theirs."""
    who.require_admin("changing the trash period")
    return RecordsSettingsPublic(
        trash_days=records.set_trash_days(who.tenant.id, body.trash_days, actor=who.name)
    )


@router.get("/records/audit", tags=["records"])
def audit_trail(
    records: Records,
    who: Who,
    action: str | None = None,
    target: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditPublic]:
    """Every records action and refusal, newest first."""
    found = records.records.audit_trail(who.tenant.id, action=action, target=target, limit=limit)
    return [AuditPublic.model_validate(e) for e in found]


@router.get("/records/me", tags=["records"])
def whoami(who: Who) -> dict[str, Any]:
    """The calling key as the audit trail names it, and whether it administers records."""
    return {"actor": who.name, "admin": who.admin}
