"""Records lifecycle types: the trash, legal holds, retention policies, deletion certificates
and the audit trail (``ingestion.records`` acts on them, ``stores.catalog.records`` keeps them).

A :class:`Selector` says which documents a hold or a policy covers; it is evaluated on
:class:`DocumentFacts` (the few columns a decision needs), so a retention run over a tenant reads
plain catalog rows, never whole documents with their versions.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from core.domain import Document, DocumentStatus


class Anchor(StrEnum):
    """What a retention period counts from."""

    DOCUMENT_DATE = "document_date"  # metadata "date" when it parses, else the upload time
    UPLOAD = "upload"


class Disposal(StrEnum):
    """What happens to a document once its retention period ends."""

    PURGE = "purge"  # removed from every store at once, with a certificate
    TRASH = "trash"  # moved to the trash (restorable for the tenant's trash period)


class CertificateState(StrEnum):
    REQUESTED = "requested"  # nothing removed yet; holds are checked again before the first
    REMOVING = "removing"  # counts taken, removal under way (a rerun goes on from here)
    COMPLETE = "complete"
    REFUSED = "refused"  # a hold was placed before the removal began: nothing was removed


@dataclass(frozen=True)
class DocumentFacts:
    """What a hold or a policy looks at: a document's identity, place, labels and dates."""

    id: str
    tenant_id: str
    collection: str
    title: str
    tags: frozenset[str]
    metadata: dict[str, Any]
    created_at: datetime
    status: DocumentStatus

    @classmethod
    def of(cls, doc: Document) -> DocumentFacts:
        return cls(
            id=doc.id,
            tenant_id=doc.tenant_id,
            collection=doc.collection,
            title=doc.title,
            tags=frozenset(doc.tags),
            metadata=dict(doc.metadata),
            created_at=doc.created_at,
            status=doc.status,
        )

    @property
    def document_date(self) -> datetime:
        """The document's own date (metadata ``date``: ``2024-03-15``, ``2024-03``, ``2024``
        or an ISO timestamp), else when it was uploaded."""
        return parse_date(self.metadata.get("date")) or self.created_at


_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


def parse_date(value: object) -> datetime | None:
    """A metadata date as an aware UTC datetime; ``None`` when it is absent or does not parse
    (a policy then counts from the upload time, never from a guess)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if m := _PARTIAL_DATE.match(text):
        year, month = int(m[1]), int(m[2] or 1)
        return datetime(year, month, 1, tzinfo=UTC) if 1 <= month <= 12 else None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def add_period(start: datetime, *, years: int = 0, months: int = 0, days: int = 0) -> datetime:
    """``start`` plus a calendar period: 29 February plus one year is 28 February."""
    month_index = start.month - 1 + months + 12 * years
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day) + timedelta(days=days)


@dataclass(frozen=True)
class Selector:
    """Which documents a hold or a policy covers: every field given must match (tags: any of
    them); an empty selector matches nothing.

    ``type`` is the document type gedrag has no field for yet: metadata ``type`` equal to it,
    or a tag equal to it. ``metadata`` is equality per key (a correspondent:
    ``{"correspondent": "ACME"}``); ``title_contains`` with the others makes a saved query.
    """

    document_ids: tuple[str, ...] = ()
    collection: str | None = None
    tags: tuple[str, ...] = ()
    type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    title_contains: str | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.document_ids
            or self.collection
            or self.tags
            or self.type
            or self.metadata
            or self.title_contains
        )

    def matches(self, doc: DocumentFacts) -> bool:
        if self.empty:
            return False
        if self.document_ids and doc.id not in self.document_ids:
            return False
        if self.collection is not None and doc.collection != self.collection:
            return False
        if self.tags and not doc.tags.intersection(self.tags):
            return False
        if self.type is not None and not (
            doc.metadata.get("type") == self.type or self.type in doc.tags
        ):
            return False
        if any(doc.metadata.get(k) != v for k, v in self.metadata.items()):
            return False
        return not (
            self.title_contains and self.title_contains.casefold() not in doc.title.casefold()
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "document_ids": list(self.document_ids),
            "collection": self.collection,
            "tags": list(self.tags),
            "type": self.type,
            "metadata": dict(self.metadata),
            "title_contains": self.title_contains,
        }
        return {k: v for k, v in out.items() if v not in (None, [], {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selector:
        return cls(
            document_ids=tuple(data.get("document_ids") or ()),
            collection=data.get("collection"),
            tags=tuple(data.get("tags") or ()),
            type=data.get("type"),
            metadata=dict(data.get("metadata") or {}),
            title_contains=data.get("title_contains"),
        )


@dataclass(frozen=True)
class Hold:
    """A legal hold: while active, the documents it covers cannot be deleted, purged,
    re-versioned or moved, by anyone or any policy."""

    id: str
    tenant_id: str
    name: str
    reason: str
    placed_by: str
    selector: Selector
    created_at: datetime
    released_at: datetime | None = None
    released_by: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None


@dataclass(frozen=True)
class Period:
    years: int = 0
    months: int = 0
    days: int = 0

    def after(self, start: datetime) -> datetime:
        return add_period(start, years=self.years, months=self.months, days=self.days)

    def __str__(self) -> str:
        parts = [(self.years, "year"), (self.months, "month"), (self.days, "day")]
        text = ", ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)
        return text or "0 days"


@dataclass(frozen=True)
class RetentionPolicy:
    """A retention rule, e.g. invoices: 10 years after the document date, then purge. A
    policy that would dispose of existing documents at once waits for an administrator's
    confirmation (``confirmed=False``: it disposes of nothing, though it still keeps documents
    as long as it says)."""

    id: str
    tenant_id: str
    name: str
    selector: Selector
    period: Period
    anchor: Anchor
    action: Disposal
    confirmed: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    def due(self, doc: DocumentFacts) -> datetime:
        start = doc.document_date if self.anchor == Anchor.DOCUMENT_DATE else doc.created_at
        return self.period.after(start)


@dataclass(frozen=True)
class TrashEntry:
    document_id: str
    tenant_id: str
    title: str
    collection: str
    trashed_at: datetime
    purge_after: datetime
    trashed_by: str
    reason: str


@dataclass(frozen=True)
class Certificate:
    """What a purge (or a redaction) removed from each store, counted before and after, and
    the SHA-256 of the removed originals. Built while the purge runs: ``state`` says how far."""

    id: str
    tenant_id: str
    document_id: str
    kind: str  # "purge" | "redaction"
    reason: str
    requested_by: str
    state: CertificateState
    job_id: str | None
    created_at: datetime
    completed_at: datetime | None
    stores: dict[str, dict[str, dict[str, int]]]  # store → what → {before, after}
    originals: list[dict[str, Any]]
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "document_id": self.document_id,
            "kind": self.kind,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "state": self.state.value,
            "job_id": self.job_id,
            "created_at": self.created_at.isoformat(),
            "completed_at": None if self.completed_at is None else self.completed_at.isoformat(),
            "stores": self.stores,
            "originals": self.originals,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class AuditEntry:
    id: str
    tenant_id: str
    at: datetime
    actor: str
    action: str  # "trash", "restore", "purge", "hold.place", "retention.confirm", ...
    target: str  # a document, hold, policy or request id
    outcome: str  # "done" | "refused" | "requested" | "failed"
    detail: dict[str, Any]
    # The hash chain and the caller's address and sign-in (Alembic 0011, stores.catalog.audit).
    seq: int = 0
    source: str = ""
    via: str = ""
    prev_hash: str = ""
    hash: str = ""
