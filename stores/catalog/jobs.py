"""Jobs: the state of every ingestion and deletion, which the API reports and workers update
(job state lives here, never in a broker's result backend)."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select

from core.domain import Job, JobKind, JobPage, JobState
from core.errors import NotFound
from stores.catalog import rows as conv
from stores.catalog.database import Database
from stores.catalog.models import JobRow, utcnow


class JobRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, tenant_id: str, job_id: str) -> Job:
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no job with id {job_id!r}")
            return conv.job(row)

    def page(
        self,
        tenant_id: str,
        *,
        state: JobState | None = None,
        kind: JobKind | None = None,
        document_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """The tenant's jobs, newest first, keyset-paginated on (created_at, id) like
        documents; every given filter narrows."""
        q = select(JobRow).where(JobRow.tenant_id == tenant_id)
        if state is not None:
            q = q.where(JobRow.state == state)
        if kind is not None:
            q = q.where(JobRow.kind == kind)
        if document_id is not None:
            q = q.where(JobRow.document_id == document_id)
        if cursor is not None:
            created, last_id = conv.decode_cursor(cursor)
            q = q.where(
                or_(
                    JobRow.created_at < created,
                    and_(JobRow.created_at == created, JobRow.id < last_id),
                )
            )
        q = q.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit + 1)
        with self.db.session() as s:
            rows = list(s.scalars(q))
            items = [conv.job(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = conv.encode_cursor(items[-1].created_at, items[-1].id)
        return JobPage(items=items, next_cursor=next_cursor)

    def load(self, job_id: str) -> Job:
        """A job by id, whatever its tenant (workers act for every tenant)."""
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job with id {job_id!r}")
            return conv.job(row)

    def update(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        stage: str | None = None,
        progress: float | None = None,
        error: str | None = None,
        warnings: list[str] | None = None,
        new_attempt: bool = False,
    ) -> Job:
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job with id {job_id!r}")
            if state is not None:
                row.state = state
            if stage is not None:
                row.stage = stage
            if progress is not None:
                row.progress = max(0.0, min(1.0, progress))
            if error is not None:
                row.error = error
            if warnings is not None:
                row.warnings = list(warnings)
            if new_attempt:
                row.attempts += 1
            row.updated_at = utcnow()
            return conv.job(row)

    def unfinished(self) -> list[Job]:
        """Jobs still queued or running, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(JobRow)
                .where(JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]))
                .order_by(JobRow.created_at)
            )
            return [conv.job(r) for r in rows]

    def pending_counts(self) -> dict[JobState, int]:
        """How many jobs are queued and running (the queue depth, without loading them)."""
        pending = (JobState.QUEUED, JobState.RUNNING)
        with self.db.session() as s:
            rows = s.execute(
                select(JobRow.state, func.count())
                .where(JobRow.state.in_(pending))
                .group_by(JobRow.state)
            ).all()
        counts = {state: 0 for state in pending}
        counts.update({JobState(state): n for state, n in rows})
        return counts

    def delete(self, job_id: str) -> None:
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is not None:
                s.delete(row)
