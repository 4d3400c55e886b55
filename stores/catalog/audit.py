"""The audit trail (``records_audit``, Alembic 0007, chained by 0011): every action of every
tenant, append-only and hash-chained, one chain per tenant.

Each entry holds its sequence number in the tenant's chain, the hash of the entry before it and
its own hash over both (:func:`core.access.chain_hash`), so editing, removing or reordering an
entry breaks every hash after it, which :meth:`AuditRepository.verify` reports. Appending
updates the tenant's head row first (``audit_heads``): that row lock makes one writer at a time
per tenant on PostgreSQL (SQLite serialises writers anyway), and removing entries from the end
of a chain shows against the head. Database triggers refuse UPDATE and DELETE on the table; the
chain still catches whoever drops them. Entries name documents by id only and outlive them.
``tenant_id`` ``""`` is the platform's own chain (a refused token names no tenant).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError

from core import ids
from core.access import (
    GENESIS,
    ChainBreak,
    ChainReport,
    audit_context,
    audit_fields,
    chain_hash,
)
from core.records import AuditEntry
from stores.catalog.database import Database
from stores.catalog.models import AuditHeadRow, AuditRow, utcnow

# A first entry of two writers racing for a new tenant's head: the loser retries.
APPEND_ATTEMPTS = 5
SCAN_BATCH = 1000


@dataclass(frozen=True)
class NewEntry:
    actor: str
    action: str
    target: str
    outcome: str = "done"
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the trail; every field given narrows. ``action`` ending in ``*`` is a prefix
    (``document.*``)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _entry(r: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=r.id,
        tenant_id=r.tenant_id,
        at=r.at,
        actor=r.actor,
        action=r.action,
        target=r.target,
        outcome=r.outcome,
        detail=dict(r.detail or {}),
        seq=r.seq,
        source=r.source,
        via=r.via,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def _fields(r: AuditRow) -> dict[str, Any]:
    return audit_fields(
        entry_id=r.id,
        tenant_id=r.tenant_id,
        seq=r.seq,
        at=r.at,
        actor=r.actor,
        via=r.via,
        source=r.source,
        action=r.action,
        target=r.target,
        outcome=r.outcome,
        detail=r.detail or {},
    )


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self,
        tenant_id: str,
        actor: str,
        action: str,
        target: str,
        outcome: str = "done",
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """One entry, stamped with the current request's source and sign-in
        (:data:`core.access.audit_context`)."""
        (entry,) = self.append_many(tenant_id, [NewEntry(actor, action, target, outcome, detail)])
        return entry

    def append_many(self, tenant_id: str, entries: Sequence[NewEntry]) -> list[AuditEntry]:
        """Entries chained in this order, in one transaction."""
        if not entries:
            return []
        for attempt in range(APPEND_ATTEMPTS):
            try:
                return self._append(tenant_id, entries)
            except IntegrityError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _append(self, tenant_id: str, entries: Sequence[NewEntry]) -> list[AuditEntry]:
        ctx = audit_context.get()
        n = len(entries)
        with self.db.session() as s:
            head = s.execute(
                update(AuditHeadRow)
                .where(AuditHeadRow.tenant_id == tenant_id)
                .values(seq=AuditHeadRow.seq + n)
                .returning(AuditHeadRow.seq, AuditHeadRow.hash)
            ).first()
            if head is None:
                # The first entry of this tenant: a concurrent first insert fails on the
                # primary key and the loser's transaction retries (APPEND_ATTEMPTS).
                s.add(AuditHeadRow(tenant_id=tenant_id, seq=n, hash=GENESIS))
                s.flush()
                seq, prev = 0, GENESIS
            else:
                seq, prev = head[0] - n, head[1]
            rows: list[AuditRow] = []
            for e in entries:
                seq += 1
                # Stored as it will be read back (JSON types only), so the hash verifies.
                detail = json.loads(ids.canonical_json(e.detail or {}))
                row = AuditRow(
                    id=ids.new_id(),
                    tenant_id=tenant_id,
                    at=utcnow(),
                    actor=e.actor[:200],
                    action=e.action[:64],
                    target=e.target[:200],
                    outcome=e.outcome[:16],
                    detail=detail,
                    seq=seq,
                    source=ctx.source[:100],
                    via=ctx.via[:200],
                    prev_hash=prev,
                    hash="",
                )
                row.hash = prev = chain_hash(prev, _fields(row))
                rows.append(row)
            s.add_all(rows)
            s.execute(
                update(AuditHeadRow).where(AuditHeadRow.tenant_id == tenant_id).values(hash=prev)
            )
            s.flush()
            return [_entry(r) for r in rows]

    # -- reading -------------------------------------------------------------------------

    def trail(
        self,
        tenant_id: str,
        query: AuditQuery | None = None,
        *,
        before_seq: int | None = None,
        limit: int = 200,
    ) -> list[AuditEntry]:
        """Newest first; ``before_seq`` pages backwards."""
        q = self._filtered(tenant_id, query or AuditQuery())
        if before_seq is not None:
            q = q.where(AuditRow.seq < before_seq)
        q = q.order_by(AuditRow.seq.desc()).limit(limit)
        with self.db.session() as s:
            return [_entry(r) for r in s.scalars(q)]

    def scan(self, tenant_id: str, query: AuditQuery | None = None) -> Iterator[AuditEntry]:
        """Oldest first, in batches (an export of any size in constant memory)."""
        after = 0
        while True:
            q = self._filtered(tenant_id, query or AuditQuery())
            q = q.where(AuditRow.seq > after).order_by(AuditRow.seq).limit(SCAN_BATCH)
            with self.db.session() as s:
                batch = [_entry(r) for r in s.scalars(q)]
            yield from batch
            if len(batch) < SCAN_BATCH:
                return
            after = batch[-1].seq

    @staticmethod
    def _filtered(tenant_id: str, query: AuditQuery) -> Select[AuditRow]:
        q = select(AuditRow).where(AuditRow.tenant_id == tenant_id)
        if query.actor is not None:
            q = q.where(AuditRow.actor == query.actor)
        if query.action is not None:
            if query.action.endswith("*"):
                q = q.where(AuditRow.action.startswith(query.action[:-1], autoescape=True))
            else:
                q = q.where(AuditRow.action == query.action)
        if query.target is not None:
            q = q.where(AuditRow.target == query.target)
        if query.outcome is not None:
            q = q.where(AuditRow.outcome == query.outcome)
        if query.since is not None:
            q = q.where(AuditRow.at >= query.since)
        if query.until is not None:
            q = q.where(AuditRow.at < query.until)
        return q

    # -- verification --------------------------------------------------------------------

    def tenants(self) -> list[str]:
        with self.db.session() as s:
            found = set(s.scalars(select(AuditRow.tenant_id).distinct()))
            found |= set(s.scalars(select(AuditHeadRow.tenant_id)))
            return sorted(found)

    def verify(self, tenant_id: str | None = None) -> ChainReport:
        """Recompute every chain (or one tenant's): each entry's sequence number follows the
        one before, its ``prev_hash`` is that entry's hash, its hash is that of its content,
        and the last entry is the tenant's head."""
        tenants = [tenant_id] if tenant_id is not None else self.tenants()
        breaks: list[ChainBreak] = []
        total = 0
        for t in tenants:
            seq, prev, last_id = 0, GENESIS, ""
            for entry in self._raw(t):
                total += 1
                problem = None
                if entry.seq != seq + 1:
                    problem = f"sequence jumps from {seq} to {entry.seq}: entries removed"
                elif entry.prev_hash != prev:
                    problem = "its previous hash is not the hash of the entry before it"
                elif chain_hash(entry.prev_hash, _fields(entry)) != entry.hash:
                    problem = "its content does not match its hash: the entry was edited"
                if problem:
                    breaks.append(ChainBreak(t, entry.seq, entry.id, problem))
                seq, prev, last_id = entry.seq, entry.hash, entry.id
            with self.db.session() as s:
                head = s.get(AuditHeadRow, t)
                if head is not None and (head.seq, head.hash) != (seq, prev):
                    breaks.append(
                        ChainBreak(
                            t,
                            seq,
                            last_id,
                            f"the chain ends at entry {seq} but its head records entry "
                            f"{head.seq}: entries removed from its end",
                        )
                    )
        return ChainReport(tenants=len(tenants), entries=total, breaks=breaks)

    def _raw(self, tenant_id: str) -> Iterator[AuditRow]:
        after = -1
        while True:
            with self.db.session() as s:
                batch = list(
                    s.scalars(
                        select(AuditRow)
                        .where(AuditRow.tenant_id == tenant_id, AuditRow.seq > after)
                        .order_by(AuditRow.seq)
                        .limit(SCAN_BATCH)
                    )
                )
                s.expunge_all()
            yield from batch
            if len(batch) < SCAN_BATCH:
                return
            after = batch[-1].seq


EXPORT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "via",
    "source",
    "action",
    "target",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
    "id",
)


def export_lines(entries: Iterator[AuditEntry], fmt: str) -> Iterator[str]:
    """Entries as JSON lines (``jsonl``) or CSV with a header (``csv``: ``detail`` as
    canonical JSON), one line at a time: an export of any size in constant memory. Each
    line carries the entry's hashes, so an export can be verified apart from the database."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"an export is jsonl or csv, not {fmt!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(EXPORT_COLUMNS)
    for e in entries:
        row = {c: getattr(e, c) for c in EXPORT_COLUMNS} | {"at": e.at.isoformat()}
        if fmt == "jsonl":
            yield ids.canonical_json(row) + "\n"
            continue
        writer.writerow(
            [ids.canonical_json(row[c]) if c == "detail" else row[c] for c in EXPORT_COLUMNS]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
