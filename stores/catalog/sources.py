"""Sources' aggregate in the catalog (issue #18): each tenant's sources (configuration, the
encrypted credentials, schedule, cursor, the lease of the round in progress, the state of the
last syncs) and every item a source holds with its latest outcome and the document it became.

The catalog is where a sync resumes: the cursor and the items are written as a round goes, so a
restarted worker takes up where the last one stopped. Leases are taken with one conditional
``UPDATE`` (compare and set), identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from core import ids
from core.domain import JobState
from core.errors import Conflict, NotFound
from stores.catalog import rows as conv
from stores.catalog.database import Database
from stores.catalog.models import JobRow, SourceItemRow, SourceRow, utcnow

# Outcomes of an item, as the API and the console show them.
Outcome = Literal[
    "taken", "updated", "duplicate", "unchanged", "failed", "deleted", "kept", "skipped"
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)


@dataclass(frozen=True)
class SourceRecord:
    """A source as stored. ``secret`` is the Fernet token of its credentials: only the sync
    opens it, nothing returns or logs it."""

    id: str
    tenant_id: str
    name: str
    kind: str
    collection: str
    tags: tuple[str, ...]
    config: dict[str, Any]
    interval_s: int
    on_delete: str
    paused: bool
    state: str  # new | ok | failing
    cursor: str | None
    next_sync_at: datetime | None
    sync_requested: bool
    lease_until: datetime | None
    failures: int
    last_error: str | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_ok_at: datetime | None
    last_round: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    secret: str = field(default="", repr=False)

    def running(self, now: datetime) -> bool:
        """A round holds the lease now."""
        return self.lease_until is not None and self.lease_until > now


@dataclass(frozen=True)
class SourceItem:
    source_id: str
    key: str
    fingerprint: str
    present: bool
    outcome: str
    detail: str
    document_id: str | None
    job_id: str | None
    sha256: str | None
    filename: str
    size_bytes: int | None
    updated_at: datetime


@dataclass(frozen=True)
class ItemPage:
    items: list[SourceItem]
    next_cursor: str | None


@dataclass(frozen=True)
class Origin:
    """Where a document comes from: a source's item."""

    source_id: str
    source_name: str
    kind: str
    key: str
    updated_at: datetime


def _record(row: SourceRow) -> SourceRecord:
    return SourceRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        kind=row.kind,
        collection=row.collection,
        tags=tuple(row.tags or ()),
        config=dict(row.config or {}),
        interval_s=row.interval_s,
        on_delete=row.on_delete,
        paused=row.paused,
        state=row.state,
        cursor=row.cursor,
        next_sync_at=row.next_sync_at,
        sync_requested=row.sync_requested,
        lease_until=row.lease_until,
        failures=row.failures,
        last_error=row.last_error,
        last_started_at=row.last_started_at,
        last_finished_at=row.last_finished_at,
        last_ok_at=row.last_ok_at,
        last_round=dict(row.last_round or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
        secret=row.secret,
    )


def _item(row: SourceItemRow) -> SourceItem:
    return SourceItem(
        source_id=row.source_id,
        key=row.key,
        fingerprint=row.fingerprint,
        present=row.present,
        outcome=row.outcome,
        detail=row.detail,
        document_id=row.document_id,
        job_id=row.job_id,
        sha256=row.sha256,
        filename=row.filename,
        size_bytes=row.size_bytes,
        updated_at=row.updated_at,
    )


def item_id(source_id: str, key: str) -> str:
    return ids.stable_uuid("source-item", source_id, key)


class SourceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- sources -------------------------------------------------------------------------

    def create(
        self,
        tenant_id: str,
        *,
        name: str,
        kind: str,
        collection: str,
        tags: Iterable[str],
        config: dict[str, Any],
        secret: str,
        interval_s: int,
        on_delete: str,
    ) -> SourceRecord:
        """A new source, due at once; :class:`Conflict` when the tenant has one by that name."""
        name = conv.clean_name(name, "name")
        source_id = ids.stable_uuid("source", tenant_id, name)
        now = utcnow()
        try:
            with self.db.session() as s:
                if s.get(SourceRow, source_id) is not None:
                    raise Conflict(f"a source named {name!r} already exists")
                row = SourceRow(
                    id=source_id,
                    tenant_id=tenant_id,
                    name=name,
                    kind=kind,
                    collection=collection,
                    tags=sorted(set(tags)),
                    config=config,
                    secret=secret,
                    interval_s=interval_s,
                    on_delete=on_delete,
                    paused=False,
                    state="new",
                    next_sync_at=now,
                    sync_requested=False,
                    failures=0,
                    last_round={},
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
                return _record(row)
        except IntegrityError as exc:
            raise Conflict(f"a source named {name!r} already exists") from exc

    def get(self, tenant_id: str, source_id: str) -> SourceRecord:
        """The tenant's source; :class:`NotFound` for unknown ids and other tenants' ones."""
        with self.db.session() as s:
            row = s.get(SourceRow, source_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no source with id {source_id!r}")
            return _record(row)

    def load(self, source_id: str) -> SourceRecord | None:
        """Any tenant's source (the sync's worker), ``None`` when it was removed."""
        with self.db.session() as s:
            row = s.get(SourceRow, source_id)
            return None if row is None else _record(row)

    def by_name(self, tenant_id: str, name: str) -> SourceRecord:
        with self.db.session() as s:
            row = s.scalar(
                select(SourceRow).where(SourceRow.tenant_id == tenant_id, SourceRow.name == name)
            )
            if row is None:
                raise NotFound(f"no source named {name!r}")
            return _record(row)

    def all(self, tenant_id: str) -> list[SourceRecord]:
        with self.db.session() as s:
            rows = s.scalars(
                select(SourceRow).where(SourceRow.tenant_id == tenant_id).order_by(SourceRow.name)
            )
            return [_record(r) for r in rows]

    def update(self, tenant_id: str, source_id: str, **values: Any) -> SourceRecord:
        """Replace the given columns (configuration, secret, schedule, ``paused``...)."""
        allowed = {
            "collection",
            "tags",
            "config",
            "secret",
            "interval_s",
            "on_delete",
            "paused",
            "next_sync_at",
        }
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        with self.db.session() as s:
            row = s.get(SourceRow, source_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no source with id {source_id!r}")
            for name, value in values.items():
                setattr(row, name, sorted(set(value)) if name == "tags" else value)
            row.updated_at = utcnow()
            s.flush()
            return _record(row)

    def delete(self, tenant_id: str, source_id: str) -> None:
        """Remove the source and its items (the documents stay)."""
        with self.db.session() as s:
            row = s.get(SourceRow, source_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no source with id {source_id!r}")
            s.execute(delete(SourceItemRow).where(SourceItemRow.source_id == source_id))
            s.delete(row)

    def request(
        self, tenant_id: str, source_id: str, *, reset_cursor: bool = False
    ) -> SourceRecord:
        """Make the source due now (and once more after a round in progress ends);
        ``reset_cursor`` starts over from an empty cursor (:class:`Conflict` while a round
        runs, which would write its own cursor back)."""
        now = utcnow()
        with self.db.session() as s:
            row = s.get(SourceRow, source_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no source with id {source_id!r}")
            if reset_cursor:
                if row.lease_until is not None and row.lease_until > now:
                    raise Conflict(
                        f"source {row.name!r} is syncing; start over once the round has ended"
                    )
                row.cursor = None
            row.sync_requested = True
            row.next_sync_at = now
            row.updated_at = now
            s.flush()
            return _record(row)

    # -- scheduling and leases -----------------------------------------------------------

    def due(self, now: datetime, limit: int) -> list[SourceRecord]:
        """Sources due for a round and not in one, least recently started first: every due
        source of every tenant gets its turn before any gets a second one."""
        q = (
            select(SourceRow)
            .where(
                SourceRow.paused.is_(False),
                SourceRow.next_sync_at <= now,
                or_(SourceRow.lease_until.is_(None), SourceRow.lease_until < now),
            )
            .order_by(
                SourceRow.last_started_at.is_not(None),
                SourceRow.last_started_at,
                SourceRow.created_at,
            )
            .limit(limit)
        )
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(q)]

    def claim(self, source_id: str, now: datetime, lease_s: float) -> str | None:
        """Take the source's lease for one round: a token, or ``None`` when another round holds
        it (or the source is paused or gone)."""
        token = ids.new_id()
        with self.db.session() as s:
            done = s.execute(
                update(SourceRow)
                .where(
                    SourceRow.id == source_id,
                    SourceRow.paused.is_(False),
                    or_(SourceRow.lease_until.is_(None), SourceRow.lease_until < now),
                )
                .values(
                    lease_token=token,
                    lease_until=now + timedelta(seconds=lease_s),
                    last_started_at=now,
                    sync_requested=False,
                )
                .execution_options(synchronize_session=False)
            )
            return token if done.rowcount == 1 else None  # type: ignore[attr-defined]

    def heartbeat(
        self,
        source_id: str,
        token: str,
        now: datetime,
        lease_s: float,
        *,
        cursor: str | None = None,
        save_cursor: bool = False,
    ) -> bool:
        """Extend the lease (and save the cursor reached); False when the round lost it."""
        values: dict[str, Any] = {"lease_until": now + timedelta(seconds=lease_s)}
        if save_cursor:
            values["cursor"] = cursor
        with self.db.session() as s:
            done = s.execute(
                update(SourceRow)
                .where(SourceRow.id == source_id, SourceRow.lease_token == token)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def finish(
        self,
        source_id: str,
        token: str,
        *,
        now: datetime,
        ok: bool,
        error: str | None,
        cursor: str | None,
        save_cursor: bool,
        next_sync_at: datetime,
        summary: dict[str, Any],
    ) -> SourceRecord | None:
        """End the round that holds ``token``: its state, cursor and next time (at once when a
        sync was requested meanwhile); ``None`` when the round had lost its lease."""
        with self.db.session() as s:
            row = s.get(SourceRow, source_id)
            if row is None or row.lease_token != token:
                return None
            if save_cursor:
                row.cursor = cursor
            row.lease_token = None
            row.lease_until = None
            row.last_finished_at = now
            row.last_round = summary
            if ok:
                row.state = "ok"
                row.failures = 0
                row.last_error = None
                row.last_ok_at = now
            else:
                row.state = "failing"
                row.failures += 1
                row.last_error = error
            row.next_sync_at = now if row.sync_requested else next_sync_at
            row.sync_requested = False
            s.flush()
            return _record(row)

    def release_leases(self) -> int:
        """Drop every lease (a single embedded process starting: no round can be running)."""
        with self.db.session() as s:
            done = s.execute(
                update(SourceRow)
                .where(SourceRow.lease_token.is_not(None))
                .values(lease_token=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )
            return int(done.rowcount)  # type: ignore[attr-defined]

    # -- items ---------------------------------------------------------------------------

    def known(self, source_id: str) -> dict[str, str]:
        """``key → fingerprint`` of the items the source holds (as last seen)."""
        with self.db.session() as s:
            found = s.execute(
                select(SourceItemRow.key, SourceItemRow.fingerprint).where(
                    SourceItemRow.source_id == source_id, SourceItemRow.present.is_(True)
                )
            )
            return {k: f for k, f in found}

    def item(self, source_id: str, key: str) -> SourceItem | None:
        with self.db.session() as s:
            row = s.get(SourceItemRow, item_id(source_id, key))
            return None if row is None else _item(row)

    def record(
        self,
        source_id: str,
        tenant_id: str,
        key: str,
        *,
        outcome: str,
        fingerprint: str = "",
        detail: str = "",
        document_id: str | None = None,
        job_id: str | None = None,
        sha256: str | None = None,
        filename: str = "",
        size_bytes: int | None = None,
        present: bool = True,
    ) -> SourceItem:
        """Write an item's latest outcome (insert or replace)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        now = utcnow()
        with self.db.session() as s:
            row = s.get(SourceItemRow, item_id(source_id, key))
            if row is None:
                row = SourceItemRow(
                    id=item_id(source_id, key),
                    source_id=source_id,
                    tenant_id=tenant_id,
                    key=key,
                    created_at=now,
                )
                s.add(row)
            row.fingerprint = fingerprint
            row.present = present
            row.outcome = outcome
            row.detail = detail[:2000]
            row.document_id = document_id
            row.job_id = job_id
            row.sha256 = sha256
            row.filename = filename[:300]
            row.size_bytes = size_bytes
            row.updated_at = now
            s.flush()
            return _item(row)

    def rename(self, source_id: str, old_key: str, new_key: str, fingerprint: str) -> None:
        """An item moved within the source: the same row (document, outcome) under its new
        key."""
        with self.db.session() as s:
            row = s.get(SourceItemRow, item_id(source_id, old_key))
            if row is None:
                raise NotFound(f"no item {old_key!r} in source {source_id}")
            taken = s.get(SourceItemRow, item_id(source_id, new_key))
            if taken is not None:
                s.delete(taken)
                s.flush()
            s.add(
                SourceItemRow(
                    id=item_id(source_id, new_key),
                    source_id=source_id,
                    tenant_id=row.tenant_id,
                    key=new_key,
                    fingerprint=fingerprint,
                    present=True,
                    outcome=row.outcome,
                    detail=f"moved from {old_key}",
                    document_id=row.document_id,
                    job_id=row.job_id,
                    sha256=row.sha256,
                    filename=row.filename,
                    size_bytes=row.size_bytes,
                    created_at=row.created_at,
                    updated_at=utcnow(),
                )
            )
            s.delete(row)

    def page(
        self,
        tenant_id: str,
        source_id: str,
        *,
        outcome: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ItemPage:
        """The source's items, most recently changed first, keyset-paginated."""
        q = select(SourceItemRow).where(
            SourceItemRow.source_id == source_id, SourceItemRow.tenant_id == tenant_id
        )
        if outcome is not None:
            q = q.where(SourceItemRow.outcome == outcome)
        if cursor is not None:
            at, last_id = conv.decode_cursor(cursor)
            q = q.where(
                or_(
                    SourceItemRow.updated_at < at,
                    and_(SourceItemRow.updated_at == at, SourceItemRow.id < last_id),
                )
            )
        q = q.order_by(SourceItemRow.updated_at.desc(), SourceItemRow.id.desc()).limit(limit + 1)
        with self.db.session() as s:
            rows = list(s.scalars(q))
            last = rows[limit - 1] if len(rows) > limit else None
            items = [_item(r) for r in rows[:limit]]
            next_cursor = None if last is None else conv.encode_cursor(last.updated_at, last.id)
        return ItemPage(items, next_cursor)

    def counts(self, source_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Items per outcome of each source."""
        wanted = list(source_ids)
        out: dict[str, dict[str, int]] = {sid: {} for sid in wanted}
        if not wanted:
            return out
        with self.db.session() as s:
            found = s.execute(
                select(SourceItemRow.source_id, SourceItemRow.outcome, func.count())
                .where(SourceItemRow.source_id.in_(wanted))
                .group_by(SourceItemRow.source_id, SourceItemRow.outcome)
            )
            for sid, outcome, n in found:
                out[sid][outcome] = int(n)
        return out

    def origins(self, tenant_id: str, document_id: str) -> list[Origin]:
        """The items a document comes from, in every source of the tenant."""
        with self.db.session() as s:
            found = s.execute(
                select(SourceRow.id, SourceRow.name, SourceRow.kind, SourceItemRow.key)
                .add_columns(SourceItemRow.updated_at)
                .join(SourceRow, SourceRow.id == SourceItemRow.source_id)
                .where(
                    SourceItemRow.tenant_id == tenant_id,
                    SourceItemRow.document_id == document_id,
                    SourceItemRow.present.is_(True),
                )
                .order_by(SourceRow.name, SourceItemRow.key)
            )
            return [Origin(sid, name, kind, key, at) for sid, name, kind, key, at in found]

    def other_origins(self, document_id: str, source_id: str, key: str) -> int:
        """Present items, other than this one, that the document comes from."""
        with self.db.session() as s:
            n = s.scalar(
                select(func.count()).where(
                    SourceItemRow.document_id == document_id,
                    SourceItemRow.present.is_(True),
                    SourceItemRow.id != item_id(source_id, key),
                )
            )
            return int(n or 0)

    def in_flight(self, source_id: str) -> int:
        """Ingestion jobs queued or running for the source's items (its share of the queue)."""
        with self.db.session() as s:
            n = s.scalar(
                select(func.count())
                .select_from(SourceItemRow)
                .join(JobRow, JobRow.id == SourceItemRow.job_id)
                .where(
                    SourceItemRow.source_id == source_id,
                    JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]),
                )
            )
            return int(n or 0)
