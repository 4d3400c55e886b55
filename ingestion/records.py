"""Records lifecycle: the trash, legal holds, retention policies, purges with certificates, the
daily run, and subject-access requests (:mod:`ingestion.subjects`).

* **Trash.** Deleting a document moves it to the trash in one catalog transaction: it leaves
  lists, search and answers at once (readers filter on the catalog's status), its data stays in
  every store, and it can be restored for the tenant's trash period (``GEDRAG_RECORDS__
  TRASH_DAYS``, or the tenant's own). Then the daily run purges it.
* **Purge.** A delete job (:mod:`ingestion.purge`) removes the document from every store and
  certifies it; an administrator may purge at once.
* **Legal holds** cover documents, a collection, tags, a type, metadata (a correspondent) or a
  saved query; a held document cannot be deleted, purged, re-versioned or moved, by anyone or
  any policy, until the hold is released. Every refusal is audited.
* **Retention.** A policy says how long documents it selects are kept, counted from their own
  date or their upload, and what happens then (purge or trash). When several select a
  document, the longest wins. A policy change that would dispose of existing documents at once
  is kept unconfirmed (it disposes of nothing) until an administrator confirms it.

Every action and every refusal is written to the audit trail. Administrators are checked by
the API (``GEDRAG_RECORDS__ADMIN_KEYS``); the CLI is the operator's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.domain import HIDDEN_STATUSES, Document, DocumentStatus, Job, JobState
from core.errors import InvalidInput, NotFound, TransientError
from core.records import (
    Anchor,
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
from ingestion.service import Executor, IngestionService
from ingestion.subjects import SubjectRequests
from stores.catalog.models import utcnow
from stores.catalog.records import OPEN_STATES, RecordsRepository

log = logging.getLogger(__name__)

# A purge job queued or running with no news for this long was lost with its broker or worker
# (the in-process broker dies with its process): the daily run queues it again. Purge steps are
# idempotent, so a job that was merely slow and runs twice changes nothing.
LOST_JOB_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Due:
    """A document whose retention period ends by the evaluation time, under the policy that
    keeps it longest."""

    document_id: str
    title: str
    collection: str
    policy_id: str
    policy: str
    due_at: datetime
    action: Disposal
    confirmed: bool
    holds: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "due_at": self.due_at.isoformat(), "holds": list(self.holds)}


def evaluate(
    facts: list[DocumentFacts],
    policies: list[RetentionPolicy],
    holds: list[Hold],
    at: datetime,
) -> list[Due]:
    """The documents whose retention ends by ``at``, each under the policy that keeps it the
    longest (unconfirmed policies keep documents too, but dispose of none), with the active
    holds that cover it. Documents in the trash or being purged are the trash's business.
    Pure: 10,000 documents and a handful of policies take milliseconds."""
    active = [h for h in holds if h.active]
    out = []
    for doc in facts:
        if doc.status in HIDDEN_STATUSES:
            continue
        matching = [p for p in policies if p.selector.matches(doc)]
        if not matching:
            continue
        governing = max(matching, key=lambda p: (p.due(doc), p.id))
        due_at = governing.due(doc)
        if due_at > at:
            continue
        out.append(
            Due(
                document_id=doc.id,
                title=doc.title,
                collection=doc.collection,
                policy_id=governing.id,
                policy=governing.name,
                due_at=due_at,
                action=governing.action,
                confirmed=governing.confirmed,
                holds=tuple(h.name for h in active if h.selector.matches(doc)),
            )
        )
    return sorted(out, key=lambda d: (d.due_at, d.document_id))


@dataclass(frozen=True)
class PolicyChange:
    """A saved policy and the existing documents it would dispose of at once; ``pending``:
    it waits for an administrator's confirmation before it disposes of anything."""

    policy: RetentionPolicy
    would_dispose: list[Due]

    @property
    def pending(self) -> bool:
        return not self.policy.confirmed


@dataclass
class DailyReport:
    """What one daily run did (per tenant counts summed)."""

    tenants: int = 0
    resumed: int = 0  # unfinished purges queued again
    trash_purged: int = 0  # trash periods that ended
    retention_purged: int = 0
    retention_trashed: int = 0
    refused_held: int = 0  # disposals a legal hold refused
    pending_confirmation: int = 0  # due under a policy that waits for its confirmation
    failed: int = 0  # purges a store outage stopped: resumed by the next run
    seconds: float = 0.0
    jobs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "jobs"} | {"jobs": len(self.jobs)}


class RecordsService:
    """The records actions of one process: catalog transactions, jobs for the executor."""

    def __init__(self, ingestion: IngestionService, executor: Executor) -> None:
        self.ingestion = ingestion
        self.executor = executor
        self.rt = ingestion.rt
        self.subjects = SubjectRequests(self)

    @property
    def records(self) -> RecordsRepository:
        return self.rt.catalog.records

    def audit(
        self,
        tenant_id: str,
        actor: str,
        action: str,
        target: str,
        outcome: str = "done",
        **detail: Any,
    ) -> None:
        self.records.audit(tenant_id, actor, action, target, outcome, detail)

    # -- settings ------------------------------------------------------------------------

    def trash_days(self, tenant_id: str) -> int:
        return self.records.trash_days(tenant_id, self.rt.settings.records.trash_days)

    def set_trash_days(self, tenant_id: str, days: int, *, actor: str) -> int:
        if not 0 <= days <= 3650:
            raise InvalidInput("trash_days must be between 0 and 3650", field="trash_days")
        self.records.set_trash_days(tenant_id, days)
        self.audit(tenant_id, actor, "settings.trash_days", tenant_id, days=days)
        return days

    # -- trash ---------------------------------------------------------------------------

    def trash(
        self, tenant_id: str, document_id: str, *, actor: str, reason: str = "deleted"
    ) -> TrashEntry:
        """Move the document to the trash (409 ``held`` under a legal hold)."""
        self.rt.catalog.documents.get(tenant_id, document_id)  # 404 first
        self.records.refuse_if_held(tenant_id, document_id, action="delete", actor=actor)
        now = utcnow()
        entry = self.records.trash(
            tenant_id,
            document_id,
            by=actor,
            reason=reason,
            at=now,
            purge_after=now + timedelta(days=self.trash_days(tenant_id)),
        )
        self.audit(
            tenant_id,
            actor,
            "trash",
            document_id,
            reason=reason,
            purge_after=entry.purge_after.isoformat(),
        )
        return entry

    def restore(self, tenant_id: str, document_id: str, *, actor: str) -> Document:
        self.records.restore(tenant_id, document_id)
        self.audit(tenant_id, actor, "restore", document_id)
        return self.rt.catalog.documents.get(tenant_id, document_id)

    def purge(
        self, tenant_id: str, document_id: str, *, actor: str, reason: str
    ) -> tuple[Job, Certificate]:
        """Queue the purge of a document (in the trash or not) and open its certificate;
        409 ``held`` under a legal hold."""
        self.rt.catalog.documents.get(tenant_id, document_id)
        self.records.refuse_if_held(tenant_id, document_id, action="purge", actor=actor)
        job, cert = self.records.request_purge(tenant_id, document_id, by=actor, reason=reason)
        self.audit(
            tenant_id,
            actor,
            "purge",
            document_id,
            "requested",
            certificate_id=cert.id,
            job_id=job.id,
            reason=reason,
        )
        self.executor.submit(job)
        return job, cert

    def purge_from_trash(
        self, tenant_id: str, document_id: str, *, actor: str
    ) -> tuple[Job, Certificate]:
        """An administrator's purge-now of a document in the trash."""
        self.records.trash_entry(tenant_id, document_id)  # 404 unless in the trash
        return self.purge(tenant_id, document_id, actor=actor, reason="purged from the trash")

    # -- legal holds ---------------------------------------------------------------------

    def place_hold(
        self, tenant_id: str, *, name: str, reason: str, actor: str, selector: Selector
    ) -> Hold:
        hold = self.records.place_hold(
            tenant_id, name=name, reason=reason, placed_by=actor, selector=selector
        )
        held = self.held_documents(tenant_id, hold)
        self.audit(
            tenant_id,
            actor,
            "hold.place",
            hold.id,
            name=hold.name,
            reason=reason,
            selector=selector.to_dict(),
            documents=len(held),
        )
        return hold

    def release_hold(self, tenant_id: str, hold_id: str, *, actor: str) -> Hold:
        hold = self.records.release_hold(tenant_id, hold_id, by=actor)
        self.audit(tenant_id, actor, "hold.release", hold.id, name=hold.name)
        return hold

    def held_documents(self, tenant_id: str, hold: Hold) -> list[DocumentFacts]:
        """The documents the hold covers now (a saved query covers new matches too)."""
        return [d for d in self.records.facts(tenant_id) if hold.selector.matches(d)]

    # -- retention -----------------------------------------------------------------------

    def save_policy(
        self,
        tenant_id: str,
        *,
        name: str,
        selector: Selector,
        period: Period,
        anchor: Anchor,
        action: Disposal,
        confirm: bool,
        actor: str,
        policy_id: str | None = None,
    ) -> PolicyChange:
        """Create or change a policy. The change is confirmed at once unless it would dispose
        of existing documents now, which needs ``confirm`` (an administrator's)."""
        now = utcnow()
        facts = self.records.facts(tenant_id)
        before = self.records.policies(tenant_id)
        others = [p for p in before if p.id != policy_id]
        probe = RetentionPolicy(
            id=policy_id or "new",
            tenant_id=tenant_id,
            name=name,
            selector=selector,
            period=period,
            anchor=anchor,
            action=action,
            confirmed=True,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        disposed_before = {d.document_id for d in evaluate(facts, before, [], now) if d.confirmed}
        would = [
            d
            for d in evaluate(facts, [*others, probe], [], now)
            if d.confirmed and d.document_id not in disposed_before
        ]
        policy = self.records.save_policy(
            tenant_id,
            name=name,
            selector=selector,
            period=period,
            anchor=anchor,
            action=action,
            confirmed=confirm or not would,
            by=actor,
            policy_id=policy_id,
        )
        would = [
            Due(**{**asdict(d), "policy_id": policy.id}) if d.policy_id == probe.id else d
            for d in would
        ]
        self.audit(
            tenant_id,
            actor,
            "retention.create" if policy_id is None else "retention.change",
            policy.id,
            "done" if policy.confirmed else "pending",
            name=policy.name,
            period=str(period),
            anchor=anchor.value,
            disposal=action.value,
            selector=selector.to_dict(),
            would_dispose=len(would),
            confirmed=policy.confirmed,
        )
        return PolicyChange(policy, would)

    def confirm_policy(self, tenant_id: str, policy_id: str, *, actor: str) -> PolicyChange:
        policy = self.records.confirm_policy(tenant_id, policy_id)
        due = [d for d in self.preview(tenant_id) if d.policy_id == policy.id]
        self.audit(
            tenant_id,
            actor,
            "retention.confirm",
            policy.id,
            name=policy.name,
            would_dispose=len(due),
        )
        return PolicyChange(policy, due)

    def delete_policy(self, tenant_id: str, policy_id: str, *, actor: str) -> None:
        policy = self.records.policy(tenant_id, policy_id)
        self.records.delete_policy(tenant_id, policy_id)
        self.audit(tenant_id, actor, "retention.delete", policy_id, name=policy.name)

    def preview(
        self, tenant_id: str, *, within_days: int = 0, at: datetime | None = None
    ) -> list[Due]:
        """The dry run: what the daily run would dispose of by ``at`` (now) plus
        ``within_days``, held and unconfirmed ones included and flagged."""
        when = (at or utcnow()) + timedelta(days=within_days)
        return evaluate(
            self.records.facts(tenant_id),
            self.records.policies(tenant_id),
            self.records.holds(tenant_id, active_only=True),
            when,
        )

    # -- the daily run -------------------------------------------------------------------

    def run_daily(
        self,
        *,
        tenant_id: str | None = None,
        at: datetime | None = None,
        lost_after: timedelta = LOST_JOB_AFTER,
    ) -> DailyReport:
        """Resume unfinished purges, purge what the trash period released, apply retention;
        a legal hold refuses (audited). Celery beat runs it daily; ``gedrag records
        run-daily`` in the embedded mode."""
        started = time.perf_counter()
        now = at or utcnow()
        report = DailyReport()
        tenants = [tenant_id] if tenant_id else self.records.tenants_with_records()
        for tenant in tenants:
            report.tenants += 1
            self._resume(tenant, now, lost_after, report)
            self._expire_trash(tenant, now, report)
            self._apply_retention(tenant, now, report)
        report.seconds = round(time.perf_counter() - started, 3)
        log.info("records daily run", extra=report.to_dict())
        return report

    def _submit(self, job: Job, report: DailyReport) -> None:
        """Run or queue a purge; a store outage stops that one only (it stays resumable)."""
        try:
            self.executor.submit(job)
        except TransientError as exc:
            report.failed += 1
            log.warning(
                "purge stopped, resumed by the next run",
                extra={"job_id": job.id, "cause": exc.detail},
            )

    def _resume(
        self, tenant: str, now: datetime, lost_after: timedelta, report: DailyReport
    ) -> None:
        jobs = self.rt.catalog.jobs
        for cert in self.records.certificates(tenant, states=OPEN_STATES):
            if cert.job_id is None:
                continue
            try:
                job = jobs.load(cert.job_id)
            except NotFound:
                continue
            # Failed (retries spent on a store down), or queued or running with no news for
            # ``lost_after`` (the broker or the worker that held it is gone).
            lost = not job.state.finished and job.updated_at <= now - lost_after
            if job.state == JobState.FAILED or lost:
                job = jobs.update(job.id, state=JobState.QUEUED, stage="resumed", error="")
                self.audit(
                    tenant,
                    "system:daily",
                    "purge.resume",
                    cert.document_id,
                    certificate_id=cert.id,
                    job_id=job.id,
                )
                self._submit(job, report)
                report.resumed += 1
                report.jobs.append(job.id)

    def _expire_trash(self, tenant: str, now: datetime, report: DailyReport) -> None:
        holds = self.records.holds(tenant, active_only=True)
        due = self.records.trashed(tenant, due_by=now)
        facts = {f.id: f for f in self.records.facts(tenant, [e.document_id for e in due])}
        for entry in due:
            doc = facts.get(entry.document_id)
            if doc is None or doc.status != DocumentStatus.TRASHED:
                continue
            held = self.records.holding(doc, holds)
            if held:
                report.refused_held += 1
                self.audit(
                    tenant, "system:trash", "purge", doc.id, "refused", holds=[h.name for h in held]
                )
                continue
            job, _ = self.records.request_purge(
                tenant, doc.id, by="system:trash", reason="trash period ended"
            )
            self.audit(tenant, "system:trash", "purge", doc.id, "requested", job_id=job.id)
            self._submit(job, report)
            report.trash_purged += 1
            report.jobs.append(job.id)

    def _apply_retention(self, tenant: str, now: datetime, report: DailyReport) -> None:
        policies = self.records.policies(tenant)
        if not policies:
            return
        holds = self.records.holds(tenant, active_only=True)
        audits: list[tuple[str, str, str, str, dict[str, Any]]] = []
        purges: list[tuple[str, str, str]] = []
        for due in evaluate(self.records.facts(tenant), policies, holds, now):
            actor = f"policy:{due.policy}"
            if not due.confirmed:
                report.pending_confirmation += 1
                continue
            if due.holds:
                report.refused_held += 1
                audits.append(
                    (
                        actor,
                        f"retention.{due.action.value}",
                        due.document_id,
                        "refused",
                        {"holds": list(due.holds), "policy_id": due.policy_id},
                    )
                )
                continue
            reason = f"retention policy {due.policy!r} (due {due.due_at.date().isoformat()})"
            if due.action == Disposal.TRASH:
                self.records.trash(
                    tenant,
                    due.document_id,
                    by=actor,
                    reason=reason,
                    at=now,
                    purge_after=now + timedelta(days=self.trash_days(tenant)),
                )
                audits.append((actor, "trash", due.document_id, "done", {"reason": reason}))
                report.retention_trashed += 1
                continue
            purges.append((due.document_id, actor, reason))
        # A backlog (a policy just confirmed) is handed over 500 documents a transaction.
        requested = self.records.request_purges(tenant, purges)
        by_doc = {doc: (actor, reason) for doc, actor, reason in purges}
        for job, _ in requested:
            actor, reason = by_doc[job.document_id]
            audits.append(
                (actor, "purge", job.document_id, "requested", {"job_id": job.id, "reason": reason})
            )
        self.records.audit_many(tenant, audits)
        for job, _ in requested:
            self._submit(job, report)
            report.retention_purged += 1
            report.jobs.append(job.id)


def public_certificate(cert: Certificate) -> dict[str, Any]:
    """A certificate as shown: never the entity keys a running purge keeps aside."""
    data = cert.to_dict()
    data["detail"] = {k: v for k, v in cert.detail.items() if k != "pending"}
    data["complete"] = cert.state == CertificateState.COMPLETE
    return data
