"""Sorting's aggregate in the catalog (issue #17): a tenant's vocabulary and settings, each
document's sorting record (decision, typed fields, classifier features, training label), the
typed field rows that listings filter on, and the events that say who decided what (and what an
undo restores).

A record, its field rows and its event are written in one transaction; a label given or
corrected bumps the tenant's ``examples_version`` in the same transaction, so every process
knows its fitted classifier is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from core import ids
from core.domain import DocumentFilter
from core.errors import InvalidInput, NotFound
from stores.catalog import rows as conv
from stores.catalog.database import Database
from stores.catalog.models import (
    DocumentRow,
    SortingDocumentRow,
    SortingEntryRow,
    SortingEventRow,
    SortingFieldRow,
    SortingSettingsRow,
    utcnow,
)


@dataclass(frozen=True)
class SortingSettings:
    threshold: float | None  # None: the platform's default (GEDRAG_SORTING__THRESHOLD)
    enabled: bool
    examples_version: int


@dataclass(frozen=True)
class SortingRecord:
    """A document's sorting as stored."""

    tenant_id: str
    document_id: str
    version_id: str | None
    state: str  # applied | review | confirmed
    document_type: str | None
    issuer: str | None
    recipient: str | None
    tags: list[str]
    fields: dict[str, Any]
    confidence: float | None
    reason: str
    detail: dict[str, Any]
    features: dict[str, Any]
    label: str | None
    decided_by: str
    updated_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """What the API and the history show (no features)."""
        return {
            "state": self.state,
            "document_type": self.document_type,
            "issuer": self.issuer,
            "recipient": self.recipient,
            "tags": list(self.tags),
            "fields": dict(self.fields),
            "confidence": self.confidence,
            "reason": self.reason,
            "label": self.label,
        }


@dataclass(frozen=True)
class SortingEvent:
    id: str
    document_id: str
    at: datetime
    actor: str
    action: str
    confidence: float | None
    reason: str
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldValue:
    key: str
    num: float | None
    text: str | None


@dataclass(frozen=True)
class RecordPage:
    items: list[SortingRecord]
    next_cursor: str | None


def _record(row: SortingDocumentRow) -> SortingRecord:
    return SortingRecord(
        tenant_id=row.tenant_id,
        document_id=row.document_id,
        version_id=row.version_id,
        state=row.state,
        document_type=row.document_type,
        issuer=row.issuer,
        recipient=row.recipient,
        tags=list(row.tags or []),
        fields=dict(row.fields or {}),
        confidence=row.confidence,
        reason=row.reason,
        detail=dict(row.detail or {}),
        features=dict(row.features or {}),
        label=row.label,
        decided_by=row.decided_by,
        updated_at=row.updated_at,
    )


def _event(row: SortingEventRow) -> SortingEvent:
    return SortingEvent(
        id=row.id,
        document_id=row.document_id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        confidence=row.confidence,
        reason=row.reason,
        before=dict(row.before or {}),
        after=dict(row.after or {}),
    )


_OPS = {"eq", "gt", "gte", "lt", "lte"}


def filter_clauses(flt: DocumentFilter) -> list[ColumnElement[bool]]:
    """The listing's sorting filters (type, correspondent, typed fields) as conditions on
    ``DocumentRow``: ``stores.catalog.documents`` adds them to its query."""
    out: list[ColumnElement[bool]] = []
    s = SortingDocumentRow
    if flt.document_type is not None:
        out.append(
            exists().where(s.document_id == DocumentRow.id, s.document_type == flt.document_type)
        )
    if flt.correspondent is not None:
        out.append(
            exists().where(
                s.document_id == DocumentRow.id,
                or_(s.issuer == flt.correspondent, s.recipient == flt.correspondent),
            )
        )
    f = SortingFieldRow
    for cond in flt.fields:
        if cond.op not in _OPS:
            raise InvalidInput(f"unknown operator {cond.op!r}", field=f"field.{cond.key}")
        if isinstance(cond.value, str):
            value_clause = f.text == cond.value
        else:
            col = f.num
            value_clause = {
                "eq": col == cond.value,
                "gt": col > cond.value,
                "gte": col >= cond.value,
                "lt": col < cond.value,
                "lte": col <= cond.value,
            }[cond.op]
        out.append(exists().where(f.document_id == DocumentRow.id, f.key == cond.key, value_clause))
    return out


class SortingRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- vocabulary --------------------------------------------------------------------------

    def entries(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's entries (their JSON form), by kind and key."""
        with self.db.session() as s:
            rows = s.scalars(
                select(SortingEntryRow)
                .where(SortingEntryRow.tenant_id == tenant_id)
                .order_by(SortingEntryRow.kind, SortingEntryRow.key)
            )
            return [dict(r.data) for r in rows]

    def put_entry(self, tenant_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or replace the entry of ``data["kind"]`` and ``data["key"]``; True when new."""
        kind, key = str(data["kind"]), str(data["key"])
        entry_id = ids.stable_uuid("sorting-entry", tenant_id, kind, key)
        with self.db.session() as s:
            row = s.get(SortingEntryRow, entry_id)
            created = row is None
            if row is None:
                row = SortingEntryRow(
                    id=entry_id, tenant_id=tenant_id, kind=kind, key=key, data=data
                )
                s.add(row)
            else:
                row.data = data
                row.updated_at = utcnow()
            return dict(data), created

    def delete_entry(self, tenant_id: str, kind: str, key: str) -> None:
        with self.db.session() as s:
            row = s.get(SortingEntryRow, ids.stable_uuid("sorting-entry", tenant_id, kind, key))
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no {kind} {key!r} in the vocabulary")
            s.delete(row)

    # -- settings ----------------------------------------------------------------------------

    def settings(self, tenant_id: str) -> SortingSettings:
        with self.db.session() as s:
            row = s.get(SortingSettingsRow, tenant_id)
            if row is None:
                return SortingSettings(None, True, 0)
            return SortingSettings(row.threshold, row.enabled, row.examples_version)

    def set_settings(
        self,
        tenant_id: str,
        *,
        threshold: float | None = None,
        clear_threshold: bool = False,
        enabled: bool | None = None,
    ) -> SortingSettings:
        with self.db.session() as s:
            row = self._settings_row(s, tenant_id)
            if threshold is not None or clear_threshold:
                row.threshold = threshold
            if enabled is not None:
                row.enabled = enabled
            row.updated_at = utcnow()
            s.flush()
            return SortingSettings(row.threshold, row.enabled, row.examples_version)

    @staticmethod
    def _settings_row(s: Any, tenant_id: str) -> SortingSettingsRow:
        row = s.get(SortingSettingsRow, tenant_id)
        if row is None:
            row = SortingSettingsRow(tenant_id=tenant_id, enabled=True, examples_version=0)
            s.add(row)
            s.flush()
        return row  # type: ignore[no-any-return]

    # -- records -----------------------------------------------------------------------------

    def get(self, tenant_id: str, document_id: str) -> SortingRecord | None:
        with self.db.session() as s:
            row = s.get(SortingDocumentRow, document_id)
            if row is None or row.tenant_id != tenant_id:
                return None
            return _record(row)

    def save(
        self,
        record: SortingRecord,
        values: Sequence[FieldValue],
        *,
        event: SortingEvent | None = None,
        examples_changed: bool = False,
    ) -> SortingRecord:
        """Write the record with its field rows (replaced) and its event in one transaction;
        ``examples_changed`` bumps the tenant's examples version (a label was given or taken
        back). A document deleted meanwhile answers :class:`NotFound`."""
        with self.db.session() as s:
            doc = s.get(DocumentRow, record.document_id)
            if doc is None or doc.tenant_id != record.tenant_id:
                raise NotFound(f"no document with id {record.document_id!r}")
            row = s.get(SortingDocumentRow, record.document_id)
            if row is None:
                row = SortingDocumentRow(document_id=record.document_id)
                s.add(row)
            row.tenant_id = record.tenant_id
            row.version_id = record.version_id
            row.state = record.state
            row.document_type = record.document_type
            row.issuer = record.issuer
            row.recipient = record.recipient
            row.tags = list(record.tags)
            row.fields = dict(record.fields)
            row.confidence = record.confidence
            row.reason = record.reason
            row.detail = dict(record.detail)
            row.features = dict(record.features)
            row.label = record.label
            row.decided_by = record.decided_by
            row.updated_at = utcnow()
            s.execute(delete(SortingFieldRow).where(SortingFieldRow.document_id == doc.id))
            s.add_all(
                SortingFieldRow(document_id=doc.id, key=v.key, num=v.num, text=v.text)
                for v in values
            )
            if event is not None:
                s.add(
                    SortingEventRow(
                        id=event.id,
                        tenant_id=record.tenant_id,
                        document_id=record.document_id,
                        at=event.at,
                        actor=event.actor,
                        action=event.action,
                        confidence=event.confidence,
                        reason=event.reason,
                        before=event.before,
                        after=event.after,
                    )
                )
            if examples_changed:
                settings = self._settings_row(s, record.tenant_id)
                settings.examples_version += 1
            s.flush()
            return _record(row)

    def page(
        self, tenant_id: str, *, state: str | None, cursor: str | None, limit: int
    ) -> RecordPage:
        """Records newest first (keyset on ``updated_at``, document id); the review queue is
        ``state="review"``."""
        q = select(SortingDocumentRow).where(SortingDocumentRow.tenant_id == tenant_id)
        if state is not None:
            q = q.where(SortingDocumentRow.state == state)
        if cursor is not None:
            at, last = conv.decode_cursor(cursor)
            q = q.where(
                or_(
                    SortingDocumentRow.updated_at < at,
                    and_(
                        SortingDocumentRow.updated_at == at,
                        SortingDocumentRow.document_id < last,
                    ),
                )
            )
        q = q.order_by(
            SortingDocumentRow.updated_at.desc(), SortingDocumentRow.document_id.desc()
        ).limit(limit + 1)
        with self.db.session() as s:
            rows = list(s.scalars(q))
            items = [_record(r) for r in rows[:limit]]
        nxt = None
        if len(rows) > limit and items[-1].updated_at is not None:
            nxt = conv.encode_cursor(items[-1].updated_at, items[-1].document_id)
        return RecordPage(items, nxt)

    def counts(self, tenant_id: str) -> dict[str, int]:
        """Records per state."""
        with self.db.session() as s:
            found = s.execute(
                select(SortingDocumentRow.state, func.count())
                .where(SortingDocumentRow.tenant_id == tenant_id)
                .group_by(SortingDocumentRow.state)
            )
            return {state: int(n) for state, n in found}

    def many(self, tenant_id: str, document_ids: Sequence[str]) -> dict[str, SortingRecord]:
        out: dict[str, SortingRecord] = {}
        with self.db.session() as s:
            for batch in conv.in_batches(list(document_ids)):
                for row in s.scalars(
                    select(SortingDocumentRow).where(
                        SortingDocumentRow.tenant_id == tenant_id,
                        SortingDocumentRow.document_id.in_(batch),
                    )
                ):
                    out[row.document_id] = _record(row)
        return out

    def examples(self, tenant_id: str, per_label: int) -> list[tuple[str, dict[str, Any]]]:
        """``(label, features)`` of the tenant's labelled documents, the newest ``per_label``
        of each label."""
        with self.db.session() as s:
            rows = s.execute(
                select(SortingDocumentRow.label, SortingDocumentRow.features)
                .where(
                    SortingDocumentRow.tenant_id == tenant_id,
                    SortingDocumentRow.label.is_not(None),
                )
                .order_by(SortingDocumentRow.updated_at.desc())
            ).all()
        taken: dict[str, int] = {}
        out: list[tuple[str, dict[str, Any]]] = []
        for label, features in rows:
            if label is None or taken.get(label, 0) >= per_label or not features:
                continue
            taken[label] = taken.get(label, 0) + 1
            out.append((label, dict(features)))
        return out

    def recent_features(self, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        """Features of the tenant's newest documents (the terms' document frequencies)."""
        with self.db.session() as s:
            rows = s.scalars(
                select(SortingDocumentRow.features)
                .where(SortingDocumentRow.tenant_id == tenant_id)
                .order_by(SortingDocumentRow.updated_at.desc())
                .limit(limit)
            )
            return [dict(f) for f in rows if f]

    def clear_labels(self, tenant_id: str) -> int:
        """Forget every label the tenant gave (an evaluation starting again from none); the
        documents keep their decisions. Returns how many labels went."""
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(SortingDocumentRow).where(
                        SortingDocumentRow.tenant_id == tenant_id,
                        SortingDocumentRow.label.is_not(None),
                    )
                )
            )
            for row in rows:
                row.label = None
            self._settings_row(s, tenant_id).examples_version += 1
            return len(rows)

    def events(self, tenant_id: str, document_id: str) -> list[SortingEvent]:
        """The document's sorting events, newest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(SortingEventRow)
                .where(
                    SortingEventRow.tenant_id == tenant_id,
                    SortingEventRow.document_id == document_id,
                )
                .order_by(SortingEventRow.at.desc(), SortingEventRow.id.desc())
            )
            return [_event(r) for r in rows]

    def field_values(self, document_id: str) -> list[FieldValue]:
        with self.db.session() as s:
            rows = s.scalars(
                select(SortingFieldRow)
                .where(SortingFieldRow.document_id == document_id)
                .order_by(SortingFieldRow.key)
            )
            return [FieldValue(r.key, r.num, r.text) for r in rows]
