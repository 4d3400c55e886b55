"""The monitoring aggregate in the catalog (issue #27): answer traces and their feedback, the
documents each trace cites, trace retention per tenant, experiments (a challenger release in
shadow or as a canary) and drift reports.

Every read and write names the tenant: another tenant's trace or experiment answers
:class:`NotFound`, as everywhere in gedrag. Traces are written in batches by the background
writer (``monitoring.recorder``); a batch written twice (a retry after a commit whose answer was
lost) stores each trace once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from core import ids
from core.errors import Conflict, InvalidInput, NotFound
from stores.catalog import rows as conv
from stores.catalog.database import Database
from stores.catalog.models import (
    CertificateRow,
    ChunkRow,
    DocumentRow,
    ExperimentRow,
    MonitorReportRow,
    TenantRow,
    TraceDocumentRow,
    TraceRow,
    TraceSettingsRow,
    VersionRow,
    utcnow,
)

# production: served by the production release; canary: by the challenger, for the callers in
# its share; shadow: answered again by the challenger, never shown; pinned: the caller named
# the release (model ``gedrag@<release>``).
Arm = Literal["production", "canary", "shadow", "pinned"]
Route = Literal["search", "ask", "chat", "openai", "mcp"]
Rating = Literal["up", "down"]
FeedbackFilter = Literal["up", "down", "rated", "unrated"]
Mode = Literal["shadow", "canary"]
ExperimentState = Literal["running", "rolled_back", "promoted", "stopped"]
ARMS: tuple[str, ...] = get_args(Arm)
SERVED: tuple[Arm, ...] = ("production", "canary", "pinned")  # answers someone saw
_RATING = {"up": 1, "down": -1}


@dataclass(frozen=True)
class Feedback:
    """A person's judgement of one answer: thumbs up or down, why, and the answer it should
    have been."""

    rating: Rating
    reason: str = ""
    corrected_answer: str | None = None
    rated_at: datetime | None = None


@dataclass(frozen=True)
class TraceRecord:
    """One search or answer as it was served. The fields are what lists, filters and drift
    reports read; ``data`` holds the passages with their per-stage scores, the answer and its
    citations, stage latencies, token counts and the inputs a replay needs."""

    id: str
    tenant_id: str
    created_at: datetime
    route: Route
    caller: str
    release_id: str | None
    arm: Arm
    experiment_id: str | None
    parent_id: str | None
    question: str
    language: str
    refused: bool
    latency_ms: float
    top_score: float | None
    citations_dropped: int
    data: dict[str, Any] = field(default_factory=dict)
    document_ids: tuple[str, ...] = ()
    feedback: Feedback | None = None


@dataclass(frozen=True)
class TracePoint:
    """A trace's columns without ``data``: what drift reports and guardrails compute on."""

    id: str
    created_at: datetime
    arm: Arm
    release_id: str | None
    parent_id: str | None
    question: str
    language: str
    refused: bool
    latency_ms: float
    top_score: float | None
    citations_dropped: int
    rating: int | None


@dataclass(frozen=True)
class TraceFilter:
    release_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    refused: bool | None = None
    feedback: FeedbackFilter | None = None
    arm: Arm | None = None
    experiment_id: str | None = None


@dataclass(frozen=True)
class TracesPage:
    items: list[TraceRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class Experiment:
    id: str
    tenant_id: str
    release_id: str
    champion_id: str | None
    mode: Mode
    share: float
    state: ExperimentState
    reason: str
    evidence: dict[str, Any]
    canary_since: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredReport:
    id: str
    tenant_id: str
    created_at: datetime
    alerts: int
    data: dict[str, Any]


@dataclass(frozen=True)
class IncomingVersion:
    """A document version registered in a window: its type and its chunks' main language."""

    media_type: str
    language: str


class TraceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- traces -----------------------------------------------------------------------------

    def add(self, records: Sequence[TraceRecord]) -> int:
        """Store the traces (and the documents each cites) in one transaction; those already
        stored are skipped. Returns how many were new. Bulk inserts, not the ORM's unit of
        work: ~5x less CPU a trace, taken from the answers served meanwhile."""
        if not records:
            return 0
        with self.db.session() as s:
            known = set(
                s.scalars(select(TraceRow.id).where(TraceRow.id.in_([r.id for r in records])))
            )
            new = [r for r in records if r.id not in known]
            new = _without_purged(s, new)
            if new:
                s.execute(insert(TraceRow), [_values(r) for r in new])
            links = [
                {"trace_id": r.id, "document_id": d}
                for r in new
                for d in dict.fromkeys(r.document_ids)
            ]
            if links:
                s.execute(insert(TraceDocumentRow), links)
            return len(new)

    def get(self, tenant_id: str, trace_id: str) -> TraceRecord:
        with self.db.session() as s:
            return _record(_trace_row(s, tenant_id, trace_id))

    def page(
        self, tenant_id: str, flt: TraceFilter, *, cursor: str | None = None, limit: int = 50
    ) -> TracesPage:
        """Newest first, keyset-paginated on (created_at, id)."""
        q = select(TraceRow).where(*_clauses(tenant_id, flt))
        if cursor is not None:
            created, last_id = conv.decode_cursor(cursor)
            q = q.where(
                or_(
                    TraceRow.created_at < created,
                    and_(TraceRow.created_at == created, TraceRow.id < last_id),
                )
            )
        q = q.order_by(TraceRow.created_at.desc(), TraceRow.id.desc()).limit(limit + 1)
        with self.db.session() as s:
            rows = list(s.scalars(q))
            items = [_record(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = conv.encode_cursor(items[-1].created_at, items[-1].id)
        return TracesPage(items, next_cursor)

    def iterate(
        self, tenant_id: str, flt: TraceFilter, *, batch: int = 200
    ) -> Iterator[TraceRecord]:
        """Every trace matching ``flt``, newest first, read a page at a time (exports)."""
        cursor: str | None = None
        while True:
            found = self.page(tenant_id, flt, cursor=cursor, limit=batch)
            yield from found.items
            if found.next_cursor is None:
                return
            cursor = found.next_cursor

    def points(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        arms: Sequence[Arm] = SERVED,
        experiment_id: str | None = None,
        limit: int | None = None,
    ) -> list[TracePoint]:
        """The columns of the answers (searches left out) of ``arms`` created in
        [since, until), oldest first."""
        q = select(*_POINT_COLUMNS).where(
            TraceRow.tenant_id == tenant_id, TraceRow.arm.in_(arms), TraceRow.route != "search"
        )
        if since is not None:
            q = q.where(TraceRow.created_at >= since)
        if until is not None:
            q = q.where(TraceRow.created_at < until)
        if experiment_id is not None:
            q = q.where(TraceRow.experiment_id == experiment_id)
        q = q.order_by(TraceRow.created_at, TraceRow.id)
        if limit is not None:
            q = q.limit(limit)
        with self.db.session() as s:
            return [_point(r) for r in s.execute(q)]

    def shadow_pairs(
        self, tenant_id: str, experiment_id: str
    ) -> list[tuple[TracePoint, TracePoint]]:
        """(served, shadow) for every shadow answer of the experiment: the same question
        answered by production and by the challenger."""
        shadows = self.points(tenant_id, arms=("shadow",), experiment_id=experiment_id)
        parents = {s.parent_id for s in shadows if s.parent_id}
        if not parents:
            return []
        with self.db.session() as s:
            served = {
                p.id: p
                for p in (
                    _point(r)
                    for r in s.execute(
                        select(*_POINT_COLUMNS).where(
                            TraceRow.tenant_id == tenant_id, TraceRow.id.in_(parents)
                        )
                    )
                )
            }
        return [(served[x.parent_id], x) for x in shadows if x.parent_id in served]

    def set_feedback(self, tenant_id: str, trace_id: str, feedback: Feedback) -> TraceRecord:
        """Record (or replace) the feedback on an answer someone was shown."""
        with self.db.session() as s:
            row = _trace_row(s, tenant_id, trace_id)
            if row.arm == "shadow":
                raise InvalidInput("a shadow answer was never shown: it cannot be rated")
            if row.route == "search":
                raise InvalidInput("a search has no answer to rate", field="trace_id")
            row.rating = _RATING[feedback.rating]
            row.feedback_reason = feedback.reason
            row.corrected_answer = feedback.corrected_answer
            row.rated_at = feedback.rated_at or utcnow()
            s.flush()
            return _record(row)

    def tenants_with_traces(self, since: datetime) -> list[str]:
        with self.db.session() as s:
            return list(
                s.scalars(select(TraceRow.tenant_id).where(TraceRow.created_at >= since).distinct())
            )

    def chunk_tokens(self, chunk_ids: Sequence[str]) -> dict[str, int]:
        """The token count of each chunk the chunker recorded (what a trace's prompt size adds
        up, without tokenizing the passages again); chunks gone since are left out."""
        if not chunk_ids:
            return {}
        with self.db.session() as s:
            return {
                i: n
                for i, n in s.execute(
                    select(ChunkRow.id, ChunkRow.token_count).where(ChunkRow.id.in_(set(chunk_ids)))
                )
            }

    # -- retention --------------------------------------------------------------------------

    def retention(self, tenant_id: str) -> int | None:
        """The tenant's own retention in days (``None``: the platform's default)."""
        with self.db.session() as s:
            row = s.get(TraceSettingsRow, tenant_id)
            return None if row is None else row.retention_days

    def set_retention(self, tenant_id: str, days: int) -> None:
        if not 1 <= days <= 3650:
            raise InvalidInput("retention_days must be 1-3650", field="retention_days")
        with self.db.session() as s:
            row = s.get(TraceSettingsRow, tenant_id)
            if row is None:
                s.add(TraceSettingsRow(tenant_id=tenant_id, retention_days=days))
            else:
                row.retention_days = days
                row.updated_at = utcnow()

    def purge_expired(self, default_days: int, now: datetime | None = None) -> dict[str, int]:
        """Delete every tenant's traces older than its retention; returns the count per
        tenant that lost some."""
        now = now or utcnow()
        removed: dict[str, int] = {}
        with self.db.session() as s:
            own = {
                t: days
                for t, days in s.execute(
                    select(TraceSettingsRow.tenant_id, TraceSettingsRow.retention_days)
                )
            }
            for tenant_id in s.scalars(select(TenantRow.id)):
                cutoff = now - timedelta(days=own.get(tenant_id, default_days))
                done = s.execute(
                    delete(TraceRow).where(
                        TraceRow.tenant_id == tenant_id, TraceRow.created_at < cutoff
                    )
                )
                if done.rowcount:  # type: ignore[attr-defined]
                    removed[tenant_id] = done.rowcount  # type: ignore[attr-defined]
        return removed

    # -- the documents coming in ------------------------------------------------------------

    def incoming(self, tenant_id: str, since: datetime, until: datetime) -> list[IncomingVersion]:
        """Versions registered in [since, until): their media type and the language most of
        their chunks are in (``unknown`` before they are chunked)."""
        with self.db.session() as s:
            versions = list(
                s.execute(
                    select(VersionRow.id, VersionRow.media_type)
                    .join(DocumentRow, DocumentRow.id == VersionRow.document_id)
                    .where(
                        DocumentRow.tenant_id == tenant_id,
                        VersionRow.created_at >= since,
                        VersionRow.created_at < until,
                    )
                )
            )
            counts: dict[str, dict[str, int]] = {}
            for version_id, language, n in s.execute(
                select(ChunkRow.version_id, ChunkRow.language, func.count())
                .where(ChunkRow.version_id.in_([v for v, _ in versions]))
                .group_by(ChunkRow.version_id, ChunkRow.language)
            ):
                counts.setdefault(version_id, {})[language] = n
        out = []
        for version_id, media_type in versions:
            langs = counts.get(version_id, {})
            main = max(sorted(langs), key=lambda lang: langs[lang]) if langs else "unknown"
            out.append(IncomingVersion(media_type, main))
        return out

    # -- experiments ------------------------------------------------------------------------

    def start_experiment(
        self,
        tenant_id: str,
        *,
        release_id: str,
        champion_id: str | None,
        mode: Mode,
        share: float,
    ) -> Experiment:
        """A new running experiment; :class:`Conflict` while another one runs for the tenant."""
        _check_share(mode, share)
        with self.db.session() as s:
            running = s.scalar(
                select(ExperimentRow.id).where(
                    ExperimentRow.tenant_id == tenant_id, ExperimentRow.state == "running"
                )
            )
            if running is not None:
                raise Conflict(
                    f"experiment {running} is running: stop it before starting another one"
                )
            now = utcnow()
            row = ExperimentRow(
                id=ids.new_id(),
                tenant_id=tenant_id,
                release_id=release_id,
                champion_id=champion_id,
                mode=mode,
                share=share,
                state="running",
                reason="",
                evidence={},
                canary_since=now if mode == "canary" else None,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return _experiment(row)

    def running_experiment(self, tenant_id: str) -> Experiment | None:
        with self.db.session() as s:
            row = s.scalar(
                select(ExperimentRow).where(
                    ExperimentRow.tenant_id == tenant_id, ExperimentRow.state == "running"
                )
            )
            return None if row is None else _experiment(row)

    def experiment(self, tenant_id: str, experiment_id: str) -> Experiment:
        with self.db.session() as s:
            return _experiment(_experiment_row(s, tenant_id, experiment_id))

    def experiments(self, tenant_id: str) -> list[Experiment]:
        with self.db.session() as s:
            rows = s.scalars(
                select(ExperimentRow)
                .where(ExperimentRow.tenant_id == tenant_id)
                .order_by(ExperimentRow.created_at.desc(), ExperimentRow.id)
            )
            return [_experiment(r) for r in rows]

    def set_mode(self, tenant_id: str, experiment_id: str, mode: Mode, share: float) -> Experiment:
        """Switch a running experiment between shadow and canary, or change its share. The
        canary's guardrails and online metrics count from the time it became a canary."""
        _check_share(mode, share)
        with self.db.session() as s:
            row = _experiment_row(s, tenant_id, experiment_id)
            if row.state != "running":
                raise Conflict(f"experiment {experiment_id} is {row.state}, no longer running")
            if mode == "canary" and row.mode != "canary":
                row.canary_since = utcnow()
            row.mode, row.share, row.updated_at = mode, share, utcnow()
            s.flush()
            return _experiment(row)

    def end_experiment(
        self,
        tenant_id: str,
        experiment_id: str,
        state: ExperimentState,
        *,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> Experiment | None:
        """Move a running experiment to ``state`` (compare and set: ``None`` when it was no
        longer running, e.g. two processes rolled it back at once)."""
        with self.db.session() as s:
            done = s.execute(
                update(ExperimentRow)
                .where(
                    ExperimentRow.id == experiment_id,
                    ExperimentRow.tenant_id == tenant_id,
                    ExperimentRow.state == "running",
                )
                .values(state=state, reason=reason, evidence=evidence or {}, updated_at=utcnow())
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                _experiment_row(s, tenant_id, experiment_id)  # NotFound for another tenant's
                return None
            return _experiment(_experiment_row(s, tenant_id, experiment_id))

    # -- drift reports ----------------------------------------------------------------------

    def save_report(self, tenant_id: str, data: dict[str, Any], alerts: int) -> StoredReport:
        with self.db.session() as s:
            row = MonitorReportRow(id=ids.new_id(), tenant_id=tenant_id, alerts=alerts, data=data)
            s.add(row)
            s.flush()
            return StoredReport(row.id, row.tenant_id, row.created_at, row.alerts, dict(row.data))

    def latest_report(self, tenant_id: str) -> StoredReport | None:
        with self.db.session() as s:
            row = s.scalar(
                select(MonitorReportRow)
                .where(MonitorReportRow.tenant_id == tenant_id)
                .order_by(MonitorReportRow.created_at.desc(), MonitorReportRow.id.desc())
                .limit(1)
            )
            if row is None:
                return None
            return StoredReport(row.id, row.tenant_id, row.created_at, row.alerts, dict(row.data))


# -- inside another repository's transaction: the purge of a document (stores.catalog.records)


def count_citing(s: Session, document_id: str) -> int:
    """Traces that retrieved or cited the document."""
    return int(
        s.scalar(select(func.count()).where(TraceDocumentRow.document_id == document_id)) or 0
    )


def delete_citing(s: Session, document_id: str) -> None:
    """Remove the traces that retrieved or cited the document (its purge: a trace quotes it)."""
    citing = select(TraceDocumentRow.trace_id).where(TraceDocumentRow.document_id == document_id)
    s.execute(delete(TraceRow).where(TraceRow.id.in_(citing)))


_POINT_COLUMNS = (
    TraceRow.id,
    TraceRow.created_at,
    TraceRow.arm,
    TraceRow.release_id,
    TraceRow.parent_id,
    TraceRow.question,
    TraceRow.language,
    TraceRow.refused,
    TraceRow.latency_ms,
    TraceRow.top_score,
    TraceRow.citations_dropped,
    TraceRow.rating,
)


def _point(row: Any) -> TracePoint:
    return TracePoint(*row)


def _clauses(tenant_id: str, flt: TraceFilter) -> list[Any]:
    out: list[Any] = [TraceRow.tenant_id == tenant_id]
    if flt.release_id is not None:
        out.append(TraceRow.release_id == flt.release_id)
    if flt.since is not None:
        out.append(TraceRow.created_at >= flt.since)
    if flt.until is not None:
        out.append(TraceRow.created_at < flt.until)
    if flt.refused is not None:
        out.append(TraceRow.refused.is_(flt.refused))
    if flt.arm is not None:
        out.append(TraceRow.arm == flt.arm)
    if flt.experiment_id is not None:
        out.append(TraceRow.experiment_id == flt.experiment_id)
    match flt.feedback:
        case "up" | "down":
            out.append(TraceRow.rating == _RATING[flt.feedback])
        case "rated":
            out.append(TraceRow.rating.is_not(None))
        case "unrated":
            out.append(TraceRow.rating.is_(None))
        case None:
            pass
    return out


def _check_share(mode: Mode, share: float) -> None:
    if mode not in ("shadow", "canary"):
        raise InvalidInput("mode must be shadow or canary", field="mode")
    if mode == "canary" and not 0 < share <= 0.5:
        # Above half, production is the minority arm: promote through the gate instead.
        raise InvalidInput("a canary's share must be in (0, 0.5]", field="share")


def _trace_row(s: Session, tenant_id: str, trace_id: str) -> TraceRow:
    row = s.get(TraceRow, trace_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no trace with id {trace_id!r}")
    return row


def _experiment_row(s: Session, tenant_id: str, experiment_id: str) -> ExperimentRow:
    row = s.get(ExperimentRow, experiment_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no experiment with id {experiment_id!r}")
    return row


# The fields a trace's row and its record share, by name.
_SHARED = (
    "id",
    "tenant_id",
    "created_at",
    "route",
    "caller",
    "release_id",
    "arm",
    "experiment_id",
    "parent_id",
    "question",
    "language",
    "refused",
    "latency_ms",
    "top_score",
    "citations_dropped",
)


def _values(r: TraceRecord) -> dict[str, Any]:
    fb = r.feedback
    return {
        **{name: getattr(r, name) for name in _SHARED},
        "caller": r.caller[:120],
        "language": r.language[:8],
        "rating": None if fb is None else _RATING[fb.rating],
        "feedback_reason": "" if fb is None else fb.reason,
        "corrected_answer": None if fb is None else fb.corrected_answer,
        "rated_at": None if fb is None else fb.rated_at,
        "data": r.data,
    }


def _record(row: TraceRow) -> TraceRecord:
    feedback = None
    if row.rating is not None:
        feedback = Feedback(
            rating="up" if row.rating > 0 else "down",
            reason=row.feedback_reason,
            corrected_answer=row.corrected_answer,
            rated_at=row.rated_at,
        )
    return TraceRecord(
        **{name: getattr(row, name) for name in _SHARED},
        data=dict(row.data),
        document_ids=tuple(row.data.get("document_ids", ())),
        feedback=feedback,
    )


def _experiment(row: ExperimentRow) -> Experiment:
    return Experiment(
        id=row.id,
        tenant_id=row.tenant_id,
        release_id=row.release_id,
        champion_id=row.champion_id,
        mode=row.mode,  # type: ignore[arg-type]
        share=row.share,
        state=row.state,  # type: ignore[arg-type]
        reason=row.reason,
        evidence=dict(row.evidence),
        canary_since=row.canary_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _without_purged(s: Session, records: list[TraceRecord]) -> list[TraceRecord]:
    """The records, less those citing a document purged since its answer: a trace reaches the
    catalog after the answer (the writer gathers them), and the purge removed the traces it
    found. A document still there is share-locked until this commits, so a purge finishing
    meanwhile deletes these rows with its own (PostgreSQL; SQLite's writers take turns)."""
    cited = {d for r in records for d in r.document_ids}
    if not cited:
        return records
    alive = set(
        s.scalars(
            select(DocumentRow.id).where(DocumentRow.id.in_(cited)).with_for_update(read=True)
        )
    )
    missing = cited - alive
    if not missing:
        return records
    purged = set(
        s.scalars(
            select(CertificateRow.document_id).where(
                CertificateRow.document_id.in_(missing), CertificateRow.kind == "purge"
            )
        )
    )
    return [r for r in records if purged.isdisjoint(r.document_ids)]
