"""The records aggregate (Alembic 0007): the trash, legal holds, retention policies, deletion
certificates (a purge's durable state while it runs), the audit trail and per-tenant records
settings.

Status changes and their records move together in one transaction: a document enters the trash
(status ``trashed`` + a trash row), leaves it, or is handed to a purge (status ``deleting`` +
the delete job + the certificate in state ``requested``) at once or not at all. Certificates and
audit rows carry no foreign key: they outlive the documents they name, by id only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import ids
from core.domain import DocumentStatus, Job, JobKind, JobState
from core.errors import Conflict, Held, InvalidInput, NotFound
from core.records import (
    Anchor,
    AuditEntry,
    Certificate,
    CertificateState,
    Disposal,
    DocumentFacts,
    Hold,
    Period,
    RetentionPolicy,
    Selector,
    TrashEntry,
)
from stores.catalog import rows as conv
from stores.catalog import traces
from stores.catalog.access import readable_documents
from stores.catalog.audit import AuditQuery, AuditRepository, NewEntry
from stores.catalog.database import Database
from stores.catalog.models import (
    CertificateRow,
    ChunkRow,
    CollectionRow,
    DocumentRow,
    HoldRow,
    JobRow,
    MetaRow,
    RecordsSettingsRow,
    RetentionPolicyRow,
    StagedChunkRow,
    TagRow,
    TrashRow,
    VersionRow,
    utcnow,
)

OPEN_STATES = (CertificateState.REQUESTED, CertificateState.REMOVING)


@dataclass(frozen=True)
class ChunkText:
    """A chunk record's text and place, as a subject-access scan reads it."""

    id: str
    document_id: str
    version_id: str
    ordinal: int
    page_start: int | None
    page_end: int | None
    text: str


class RecordsRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        # The one audit trail of the platform (issue #19 generalised it, hash-chained).
        self.trail = AuditRepository(db)

    # -- documents as holds and policies see them ------------------------------------------

    def facts(
        self, tenant_id: str, document_ids: Iterable[str] | None = None
    ) -> list[DocumentFacts]:
        """The tenant's documents (all, or these) as :class:`DocumentFacts`, in two queries:
        a retention run over 10,000 documents reads plain columns, not whole documents."""
        q = (
            select(
                DocumentRow.id,
                DocumentRow.title,
                DocumentRow.meta,
                DocumentRow.created_at,
                DocumentRow.status,
                CollectionRow.name,
            )
            .join(CollectionRow, CollectionRow.id == DocumentRow.collection_id)
            .where(DocumentRow.tenant_id == tenant_id)
        )
        wanted = None if document_ids is None else list(document_ids)
        with self.db.session() as s:
            found: list[Any] = []
            tags: dict[str, set[str]] = {}
            for batch in [None] if wanted is None else conv.in_batches(wanted):
                qq = q if batch is None else q.where(DocumentRow.id.in_(batch))
                found.extend(s.execute(qq).all())
                tq = select(TagRow.document_id, TagRow.tag).join(
                    DocumentRow, DocumentRow.id == TagRow.document_id
                )
                tq = tq.where(DocumentRow.tenant_id == tenant_id)
                if batch is not None:
                    tq = tq.where(TagRow.document_id.in_(batch))
                for doc_id, tag in s.execute(tq):
                    tags.setdefault(doc_id, set()).add(tag)
        return [
            DocumentFacts(
                id=d,
                tenant_id=tenant_id,
                collection=coll,
                title=title,
                tags=frozenset(tags.get(d, ())),
                metadata=dict(meta or {}),
                created_at=created,
                status=DocumentStatus(status),
            )
            for d, title, meta, created, status, coll in found
        ]

    def fact(self, tenant_id: str, document_id: str) -> DocumentFacts:
        found = self.facts(tenant_id, [document_id])
        if not found:
            raise NotFound(f"no document with id {document_id!r}")
        return found[0]

    # -- the trash ----------------------------------------------------------------------------

    def trash(
        self,
        tenant_id: str,
        document_id: str,
        *,
        by: str,
        reason: str,
        purge_after: datetime,
        at: datetime | None = None,
    ) -> TrashEntry:
        """Hide the document from readers and keep it restorable until ``purge_after``.
        Idempotent: a document already in the trash keeps its entry; :class:`Conflict` while
        it is being purged."""
        with self.db.session() as s:
            row = _document(s, tenant_id, document_id)
            if row.status == DocumentStatus.DELETING:
                raise Conflict(f"document {document_id} is being purged")
            entry = s.get(TrashRow, document_id)
            if entry is None:
                entry = TrashRow(
                    document_id=document_id,
                    tenant_id=tenant_id,
                    trashed_at=at or utcnow(),
                    purge_after=purge_after,
                    trashed_by=by,
                    reason=reason,
                )
                s.add(entry)
            row.status = DocumentStatus.TRASHED
            row.updated_at = utcnow()
            s.flush()
            return _trash_entry(entry, row)

    def restore(self, tenant_id: str, document_id: str) -> None:
        """Take the document out of the trash: its status is its current version's again."""
        with self.db.session() as s:
            row = _document(s, tenant_id, document_id)
            entry = s.get(TrashRow, document_id)
            if row.status == DocumentStatus.DELETING:
                raise Conflict(f"document {document_id} is being purged: it cannot be restored")
            if entry is None or row.status != DocumentStatus.TRASHED:
                raise NotFound(f"document {document_id} is not in the trash")
            current = next((v for v in row.versions if v.number == row.current_version), None)
            row.status = DocumentStatus.READY if current is None else current.status
            row.updated_at = utcnow()
            s.delete(entry)

    def trash_entry(self, tenant_id: str, document_id: str) -> TrashEntry:
        with self.db.session() as s:
            entry = s.get(TrashRow, document_id)
            row = s.get(DocumentRow, document_id)
            if entry is None or row is None or entry.tenant_id != tenant_id:
                raise NotFound(f"document {document_id} is not in the trash")
            return _trash_entry(entry, row)

    def trashed(
        self,
        tenant_id: str | None = None,
        *,
        due_by: datetime | None = None,
        limit: int = 10_000,
        readable_by: Sequence[str] | None = None,
    ) -> list[TrashEntry]:
        """The trash, newest first (of one tenant or all); ``due_by``: only entries whose
        restore period ends by then, oldest first; ``readable_by``: only documents one of these
        principals may read (issue #19)."""
        q = select(TrashRow, DocumentRow).join(DocumentRow, DocumentRow.id == TrashRow.document_id)
        if tenant_id is not None:
            q = q.where(TrashRow.tenant_id == tenant_id)
        if readable_by is not None:
            q = q.where(readable_documents(readable_by))
        if due_by is not None:
            q = q.where(
                TrashRow.purge_after <= due_by, DocumentRow.status == DocumentStatus.TRASHED
            )
            q = q.order_by(TrashRow.purge_after, TrashRow.document_id)
        else:
            q = q.order_by(TrashRow.trashed_at.desc(), TrashRow.document_id)
        with self.db.session() as s:
            return [_trash_entry(e, d) for e, d in s.execute(q.limit(limit)).tuples()]

    # -- purges: the hand-over, the state, the end ----------------------------------------

    def request_purge(
        self, tenant_id: str, document_id: str, *, by: str, reason: str, kind: str = "purge"
    ) -> tuple[Job, Certificate]:
        """Mark the document ``deleting``, queue the job that purges it and open its
        certificate (state ``requested``), in one transaction. Asking again while a purge is
        pending returns the pending job and certificate (idempotent)."""
        with self.db.session() as s:
            row = _document(s, tenant_id, document_id)
            cert = s.scalar(
                select(CertificateRow)
                .where(
                    CertificateRow.document_id == document_id, CertificateRow.state.in_(OPEN_STATES)
                )
                .order_by(CertificateRow.created_at.desc())
                .limit(1)
            )
            job, cert = _open_purge(s, row, cert, by=by, reason=reason, kind=kind)
            s.flush()
            return conv.job(job), _certificate(cert)

    def request_purges(
        self, tenant_id: str, wanted: list[tuple[str, str, str]]
    ) -> list[tuple[Job, Certificate]]:
        """:meth:`request_purge` of many ``(document_id, by, reason)``, one transaction per
        500 (a daily run over a backlog: ~25 ms a document one by one)."""
        out: list[tuple[Job, Certificate]] = []
        for batch in conv.in_batches(wanted):
            doc_ids = [d for d, _, _ in batch]
            with self.db.session() as s:
                rows = {
                    r.id: r
                    for r in s.scalars(
                        select(DocumentRow).where(
                            DocumentRow.tenant_id == tenant_id, DocumentRow.id.in_(doc_ids)
                        )
                    )
                }
                certs = {
                    c.document_id: c
                    for c in s.scalars(
                        select(CertificateRow).where(
                            CertificateRow.document_id.in_(doc_ids),
                            CertificateRow.state.in_(OPEN_STATES),
                        )
                    )
                }
                opened = [
                    _open_purge(s, rows[d], certs.get(d), by=by, reason=reason, kind="purge")
                    for d, by, reason in batch
                    if d in rows
                ]
                s.flush()
                out.extend((conv.job(j), _certificate(c)) for j, c in opened)
        return out

    def certificate_for_job(self, job: Job) -> Certificate:
        """The certificate a purge job works on; one is opened for a delete job queued without
        it (by an earlier gedrag, or ``documents.request_delete``)."""
        with self.db.session() as s:
            cert = s.scalar(
                select(CertificateRow).where(CertificateRow.job_id == job.id).limit(1)
            ) or s.scalar(
                select(CertificateRow)
                .where(
                    CertificateRow.document_id == job.document_id,
                    CertificateRow.state.in_(OPEN_STATES),
                )
                .order_by(CertificateRow.created_at.desc())
                .limit(1)
            )
            if cert is None:
                cert = CertificateRow(
                    id=ids.new_id(),
                    tenant_id=job.tenant_id,
                    document_id=job.document_id,
                    kind="purge",
                    reason="delete job",
                    requested_by="system",
                    state=CertificateState.REQUESTED,
                    stores={},
                    originals=[],
                    detail={},
                )
                s.add(cert)
            cert.job_id = job.id
            s.flush()
            return _certificate(cert)

    def start_removal(
        self,
        certificate_id: str,
        *,
        stores: dict[str, dict[str, dict[str, int]]],
        originals: list[dict[str, Any]],
        pending: dict[str, Any],
    ) -> Certificate:
        """Record the counts taken before the first removal (state ``removing``): a purge that
        dies after this point is resumed with them, so its certificate still tells what was
        there."""
        with self.db.session() as s:
            cert = _cert_row(s, certificate_id)
            if cert.state == CertificateState.REQUESTED:
                cert.stores = stores
                cert.originals = originals
                cert.detail = {**cert.detail, "pending": pending}
                cert.state = CertificateState.REMOVING
            return _certificate(cert)

    def refuse_purge(self, certificate_id: str, holds: list[str]) -> None:
        """A hold placed after the request: nothing was removed; the document goes back to the
        trash (or stays in the catalog as it was) and the certificate says why."""
        with self.db.session() as s:
            cert = _cert_row(s, certificate_id)
            cert.state = CertificateState.REFUSED
            cert.detail = {**cert.detail, "refused_by_holds": holds}
            cert.completed_at = utcnow()
            row = s.get(DocumentRow, cert.document_id)
            if row is not None and row.status == DocumentStatus.DELETING:
                if s.get(TrashRow, row.id) is not None:
                    row.status = DocumentStatus.TRASHED
                else:
                    current = next(
                        (v for v in row.versions if v.number == row.current_version), None
                    )
                    row.status = DocumentStatus.READY if current is None else current.status
                row.updated_at = utcnow()

    def catalog_counts(self, document_id: str) -> dict[str, int]:
        """The catalog rows that hold something of the document."""
        with self.db.session() as s:
            return _catalog_counts(s, document_id)

    def finish_purge(
        self,
        certificate_id: str,
        *,
        keep_job_id: str | None,
        stores_after: dict[str, dict[str, int]],
        originals: list[dict[str, Any]],
        detail: dict[str, Any],
    ) -> Certificate:
        """Remove the document's catalog rows (versions, tags, metadata, chunk records, staged
        records, trash entry, its ingestion jobs) and complete the certificate with every
        store's count after, in one transaction: a certificate is complete exactly when the
        rows are gone."""
        with self.db.session() as s:
            cert = _cert_row(s, certificate_id)
            if cert.state == CertificateState.COMPLETE:
                return _certificate(cert)
            row = s.get(DocumentRow, cert.document_id)
            if row is not None:
                s.delete(row)
            traces.delete_citing(s, cert.document_id)  # answer traces quote the document
            s.flush()
            jobs = delete(JobRow).where(JobRow.document_id == cert.document_id)
            if keep_job_id is not None:
                jobs = jobs.where(JobRow.id != keep_job_id)
            s.execute(jobs)
            s.flush()
            after = _catalog_counts(s, cert.document_id)
            if keep_job_id is not None:
                after["jobs"] = max(0, after["jobs"] - 1)  # the purge job itself is the record
            stores: dict[str, dict[str, dict[str, int]]] = {
                name: {what: dict(pair) for what, pair in counts.items()}
                for name, counts in cert.stores.items()
            }
            for name, counts in {**stores_after, "catalog": after}.items():
                for what, n in counts.items():
                    stores.setdefault(name, {}).setdefault(what, {"before": 0})["after"] = n
            cert.stores = stores
            cert.originals = originals
            # The entity keys kept while the purge ran may be names: they go with the rows.
            cert.detail = {k: v for k, v in cert.detail.items() if k != "pending"} | detail
            cert.state = CertificateState.COMPLETE
            cert.completed_at = utcnow()
            s.flush()
            return _certificate(cert)

    def certificate(self, tenant_id: str, certificate_id: str) -> Certificate:
        with self.db.session() as s:
            cert = s.get(CertificateRow, certificate_id)
            if cert is None or cert.tenant_id != tenant_id:
                raise NotFound(f"no certificate with id {certificate_id!r}")
            return _certificate(cert)

    def certificates(
        self,
        tenant_id: str | None = None,
        *,
        states: Iterable[CertificateState] | None = None,
        document_id: str | None = None,
        limit: int = 1000,
    ) -> list[Certificate]:
        """Newest first; of one tenant or all (``gedrag migrate verify`` reads every complete
        one)."""
        q = select(CertificateRow)
        if tenant_id is not None:
            q = q.where(CertificateRow.tenant_id == tenant_id)
        if states is not None:
            q = q.where(CertificateRow.state.in_([s.value for s in states]))
        if document_id is not None:
            q = q.where(CertificateRow.document_id == document_id)
        q = q.order_by(CertificateRow.created_at.desc(), CertificateRow.id).limit(limit)
        with self.db.session() as s:
            return [_certificate(r) for r in s.scalars(q)]

    def save_certificate(self, cert: Certificate) -> Certificate:
        """Store a certificate made whole by its caller (a redaction's)."""
        with self.db.session() as s:
            s.add(
                CertificateRow(
                    id=cert.id,
                    tenant_id=cert.tenant_id,
                    document_id=cert.document_id,
                    kind=cert.kind,
                    reason=cert.reason[:500],
                    requested_by=cert.requested_by[:200],
                    state=cert.state,
                    job_id=cert.job_id,
                    stores=cert.stores,
                    originals=cert.originals,
                    detail=cert.detail,
                    completed_at=cert.completed_at,
                )
            )
        return cert

    # -- what subject-access requests and redactions read and remove ----------------------

    def chunk_texts(self, tenant_id: str, batch: int = 2000) -> Iterator[ChunkText]:
        """Every chunk record of the tenant, by id, ``batch`` rows per short transaction."""
        after = ""
        while True:
            with self.db.session() as s:
                rows = s.execute(
                    select(
                        ChunkRow.id,
                        ChunkRow.document_id,
                        ChunkRow.version_id,
                        ChunkRow.ordinal,
                        ChunkRow.page_start,
                        ChunkRow.page_end,
                        ChunkRow.text,
                    )
                    .where(ChunkRow.tenant_id == tenant_id, ChunkRow.id > after)
                    .order_by(ChunkRow.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield ChunkText(*row)
            after = rows[-1][0]

    def sha_shared(self, tenant_id: str, sha256: str, version_id: str) -> bool:
        """Whether another version of the tenant (this document's or another's) holds these
        bytes: then its original stays when this version goes."""
        with self.db.session() as s:
            other = s.scalar(
                select(VersionRow.id)
                .join(DocumentRow, DocumentRow.id == VersionRow.document_id)
                .where(
                    DocumentRow.tenant_id == tenant_id,
                    VersionRow.sha256 == sha256,
                    VersionRow.id != version_id,
                )
                .limit(1)
            )
            return other is not None

    def drop_version(self, version_id: str) -> None:
        """Remove one version's row (its chunk and staged records follow by foreign key) and
        its ingestion jobs; absent is fine."""
        with self.db.session() as s:
            row = s.get(VersionRow, version_id)
            if row is not None:
                doc = s.get(DocumentRow, row.document_id)
                if doc is not None:
                    doc.versions.remove(row)
                    doc.updated_at = utcnow()
                else:
                    s.delete(row)
            s.execute(
                delete(JobRow).where(
                    JobRow.version_id == version_id,
                    JobRow.state.in_([JobState.SUCCEEDED, JobState.FAILED]),
                )
            )

    # -- legal holds ---------------------------------------------------------------------

    def place_hold(
        self, tenant_id: str, *, name: str, reason: str, placed_by: str, selector: Selector
    ) -> Hold:
        name = conv.clean_name(name, "name")
        if selector.empty:
            raise InvalidInput(
                "a hold must name documents, a collection, tags, a type, metadata or a title query",
                field="selector",
            )
        with self.db.session() as s:
            taken = s.scalar(
                select(HoldRow.id).where(
                    HoldRow.tenant_id == tenant_id,
                    HoldRow.name == name,
                    HoldRow.released_at.is_(None),
                )
            )
            if taken is not None:
                raise Conflict(f"an active hold is already named {name!r}")
            row = HoldRow(
                id=ids.new_id(),
                tenant_id=tenant_id,
                name=name,
                reason=reason,
                placed_by=placed_by[:200],
                selector=selector.to_dict(),
            )
            s.add(row)
            s.flush()
            return _hold(row)

    def release_hold(self, tenant_id: str, hold_id: str, *, by: str) -> Hold:
        with self.db.session() as s:
            row = s.get(HoldRow, hold_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no hold with id {hold_id!r}")
            if row.released_at is None:
                row.released_at = utcnow()
                row.released_by = by[:200]
            return _hold(row)

    def hold(self, tenant_id: str, hold_id: str) -> Hold:
        with self.db.session() as s:
            row = s.get(HoldRow, hold_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no hold with id {hold_id!r}")
            return _hold(row)

    def holds(self, tenant_id: str, *, active_only: bool = False) -> list[Hold]:
        q = select(HoldRow).where(HoldRow.tenant_id == tenant_id)
        if active_only:
            q = q.where(HoldRow.released_at.is_(None))
        with self.db.session() as s:
            return [_hold(r) for r in s.scalars(q.order_by(HoldRow.created_at, HoldRow.id))]

    def holding(self, doc: DocumentFacts, holds: list[Hold] | None = None) -> list[Hold]:
        """The active holds that cover the document."""
        active = self.holds(doc.tenant_id, active_only=True) if holds is None else holds
        return [h for h in active if h.active and h.selector.matches(doc)]

    def refuse_if_held(self, tenant_id: str, document_id: str, *, action: str, actor: str) -> None:
        """:class:`Held` (409, naming the holds) when an active hold covers the document; the
        refused attempt is written to the audit trail first."""
        try:
            doc = self.fact(tenant_id, document_id)
        except NotFound:
            return  # the caller's own lookup answers 404
        held = self.holding(doc)
        if not held:
            return
        names = [h.name for h in held]
        self.audit(
            tenant_id,
            actor,
            action,
            document_id,
            "refused",
            {"holds": names, "hold_ids": [h.id for h in held]},
        )
        raise Held(
            f"document {document_id} is under legal hold {', '.join(repr(n) for n in names)}: "
            f"{action} refused until the hold is released",
            holds=names,
        )

    # -- retention policies --------------------------------------------------------------

    def save_policy(
        self,
        tenant_id: str,
        *,
        name: str,
        selector: Selector,
        period: Period,
        anchor: Anchor,
        action: Disposal,
        confirmed: bool,
        by: str,
        policy_id: str | None = None,
    ) -> RetentionPolicy:
        """Create a policy, or replace one (``policy_id``)."""
        name = conv.clean_name(name, "name")
        if selector.empty or selector.document_ids:
            raise InvalidInput(
                "a retention policy selects by type, collection, tags, metadata or title",
                field="selector",
            )
        if period.years < 0 or period.months < 0 or period.days < 0 or str(period) == "0 days":
            raise InvalidInput("the retention period must be positive", field="period")
        try:
            with self.db.session() as s:
                if policy_id is None:
                    row = RetentionPolicyRow(
                        id=ids.new_id(), tenant_id=tenant_id, created_by=by[:200]
                    )
                    s.add(row)
                else:
                    found = s.get(RetentionPolicyRow, policy_id)
                    if found is None or found.tenant_id != tenant_id:
                        raise NotFound(f"no retention policy with id {policy_id!r}")
                    row = found
                row.name = name
                row.selector = selector.to_dict()
                row.years, row.months, row.days = period.years, period.months, period.days
                row.anchor = anchor
                row.action = action
                row.confirmed = confirmed
                row.updated_at = utcnow()
                s.flush()
                return _policy(row)
        except IntegrityError as exc:
            raise Conflict(f"a retention policy is already named {name!r}") from exc

    def confirm_policy(self, tenant_id: str, policy_id: str) -> RetentionPolicy:
        with self.db.session() as s:
            row = s.get(RetentionPolicyRow, policy_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no retention policy with id {policy_id!r}")
            row.confirmed = True
            row.updated_at = utcnow()
            return _policy(row)

    def policy(self, tenant_id: str, policy_id: str) -> RetentionPolicy:
        with self.db.session() as s:
            row = s.get(RetentionPolicyRow, policy_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no retention policy with id {policy_id!r}")
            return _policy(row)

    def policies(self, tenant_id: str) -> list[RetentionPolicy]:
        with self.db.session() as s:
            rows = s.scalars(
                select(RetentionPolicyRow)
                .where(RetentionPolicyRow.tenant_id == tenant_id)
                .order_by(RetentionPolicyRow.name)
            )
            return [_policy(r) for r in rows]

    def delete_policy(self, tenant_id: str, policy_id: str) -> None:
        with self.db.session() as s:
            row = s.get(RetentionPolicyRow, policy_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no retention policy with id {policy_id!r}")
            s.delete(row)

    def tenants_with_records(self) -> list[str]:
        """Tenants that have a trash entry, a policy or an unfinished purge (the daily run)."""
        with self.db.session() as s:
            found = set(s.scalars(select(TrashRow.tenant_id).distinct()))
            found |= set(s.scalars(select(RetentionPolicyRow.tenant_id).distinct()))
            found |= set(
                s.scalars(
                    select(CertificateRow.tenant_id)
                    .where(CertificateRow.state.in_(OPEN_STATES))
                    .distinct()
                )
            )
            return sorted(found)

    # -- audit ---------------------------------------------------------------------------

    def audit(
        self,
        tenant_id: str,
        actor: str,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.trail.append(tenant_id, actor, action, target, outcome, detail)

    def audit_many(
        self, tenant_id: str, entries: list[tuple[str, str, str, str, dict[str, Any]]]
    ) -> None:
        """Many ``(actor, action, target, outcome, detail)`` in one transaction."""
        self.trail.append_many(tenant_id, [NewEntry(*e) for e in entries])

    def audit_trail(
        self,
        tenant_id: str,
        *,
        action: str | None = None,
        target: str | None = None,
        limit: int = 200,
    ) -> list[AuditEntry]:
        """Newest first."""
        return self.trail.trail(tenant_id, AuditQuery(action=action, target=target), limit=limit)

    # -- settings ------------------------------------------------------------------------

    def trash_days(self, tenant_id: str, default: int) -> int:
        with self.db.session() as s:
            row = s.get(RecordsSettingsRow, tenant_id)
            return default if row is None else row.trash_days

    def set_trash_days(self, tenant_id: str, days: int) -> None:
        with self.db.session() as s:
            row = s.get(RecordsSettingsRow, tenant_id)
            if row is None:
                s.add(RecordsSettingsRow(tenant_id=tenant_id, trash_days=days))
            else:
                row.trash_days = days
                row.updated_at = utcnow()


def _document(s: Session, tenant_id: str, document_id: str) -> DocumentRow:
    row = s.get(DocumentRow, document_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no document with id {document_id!r}")
    return row


def _open_purge(
    s: Session, row: DocumentRow, cert: CertificateRow | None, *, by: str, reason: str, kind: str
) -> tuple[JobRow, CertificateRow]:
    """The document ``deleting`` with a queued purge job and an open certificate; the pending
    ones when a purge is already under way."""
    job = None if cert is None or cert.job_id is None else s.get(JobRow, cert.job_id)
    if row.status == DocumentStatus.DELETING and cert is not None and job is not None:
        return job, cert
    row.status = DocumentStatus.DELETING
    row.updated_at = utcnow()
    job = JobRow(
        id=ids.new_id(),
        tenant_id=row.tenant_id,
        kind=JobKind.DELETE,
        document_id=row.id,
        state=JobState.QUEUED,
    )
    s.add(job)
    if cert is None:
        cert = CertificateRow(
            id=ids.new_id(),
            tenant_id=row.tenant_id,
            document_id=row.id,
            kind=kind,
            reason=reason[:500],
            requested_by=by[:200],
            state=CertificateState.REQUESTED,
            stores={},
            originals=[],
            detail={},
        )
        s.add(cert)
    cert.job_id = job.id
    return job, cert


def _cert_row(s: Session, certificate_id: str) -> CertificateRow:
    cert = s.get(CertificateRow, certificate_id)
    if cert is None:
        raise NotFound(f"no certificate with id {certificate_id!r}")
    return cert


def _catalog_counts(s: Session, document_id: str) -> dict[str, int]:
    def count(q: Any) -> int:
        return int(s.scalar(q) or 0)

    versions = select(VersionRow.id).where(VersionRow.document_id == document_id)
    return {
        "documents": count(select(func.count()).where(DocumentRow.id == document_id)),
        "versions": count(select(func.count()).select_from(versions.subquery())),
        "tags": count(select(func.count()).where(TagRow.document_id == document_id)),
        "metadata": count(select(func.count()).where(MetaRow.document_id == document_id)),
        "chunks": count(select(func.count()).where(ChunkRow.document_id == document_id)),
        "staged_chunks": count(
            select(func.count()).where(StagedChunkRow.document_id == document_id)
        ),
        "trash": count(select(func.count()).where(TrashRow.document_id == document_id)),
        "jobs": count(select(func.count()).where(JobRow.document_id == document_id)),
        "traces": traces.count_citing(s, document_id),
    }


def _trash_entry(e: TrashRow, d: DocumentRow) -> TrashEntry:
    return TrashEntry(
        document_id=e.document_id,
        tenant_id=e.tenant_id,
        title=d.title,
        collection=d.collection.name,
        trashed_at=e.trashed_at,
        purge_after=e.purge_after,
        trashed_by=e.trashed_by,
        reason=e.reason,
    )


def _certificate(r: CertificateRow) -> Certificate:
    return Certificate(
        id=r.id,
        tenant_id=r.tenant_id,
        document_id=r.document_id,
        kind=r.kind,
        reason=r.reason,
        requested_by=r.requested_by,
        state=CertificateState(r.state),
        job_id=r.job_id,
        created_at=r.created_at,
        completed_at=r.completed_at,
        stores={k: dict(v) for k, v in (r.stores or {}).items()},
        originals=list(r.originals or []),
        detail=dict(r.detail or {}),
    )


def _hold(r: HoldRow) -> Hold:
    return Hold(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        reason=r.reason,
        placed_by=r.placed_by,
        selector=Selector.from_dict(r.selector),
        created_at=r.created_at,
        released_at=r.released_at,
        released_by=r.released_by,
    )


def _policy(r: RetentionPolicyRow) -> RetentionPolicy:
    return RetentionPolicy(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        selector=Selector.from_dict(r.selector),
        period=Period(r.years, r.months, r.days),
        anchor=Anchor(r.anchor),
        action=Disposal(r.action),
        confirmed=r.confirmed,
        created_by=r.created_by,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
