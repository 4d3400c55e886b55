"""Catalog storage of the evaluation harness: releases, runs with per-question results, and
promotion decisions with their evidence. Platform-level, not per tenant.

The production release is the one named by the newest decision that promoted; every decision
(refusals too) is kept, so the history of production is auditable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import ids
from core.errors import NotFound
from stores.catalog.catalog import Catalog
from stores.catalog.models import EvalResultRow, EvalRunRow, PromotionRow, ReleaseRow, utcnow


@dataclass(frozen=True)
class StoredRelease:
    id: str
    name: str
    description: str
    config: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class StoredRun:
    id: str
    release_id: str
    suite: str
    suite_id: str
    code_version: str
    state: str
    scores: dict[str, float]
    info: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    id: str
    release_id: str
    previous_id: str | None
    suite: str | None
    promoted: bool
    reasons: list[str]
    evidence: dict[str, Any]
    decided_by: str
    decided_at: datetime


class EvalStore:
    """Evaluation rows in the catalog database (same engine, same transactions rules)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # -- releases ---------------------------------------------------------------------------

    def save_release(
        self, release_id: str, name: str, description: str, config: dict[str, Any]
    ) -> StoredRelease:
        """Idempotent: the id is the hash of the config, so an existing row is the same."""
        try:
            with self.catalog.session() as s:
                row = s.get(ReleaseRow, release_id)
                if row is None:
                    row = ReleaseRow(
                        id=release_id, name=name, description=description, config=config
                    )
                    s.add(row)
                    s.flush()
                return _release(row)
        except IntegrityError:  # a concurrent writer stored the same release
            return self.get_release(release_id)

    def get_release(self, release_id: str) -> StoredRelease:
        with self.catalog.session() as s:
            row = s.get(ReleaseRow, release_id)
            if row is None:
                row = s.scalar(
                    select(ReleaseRow)
                    .where(ReleaseRow.name == release_id)
                    .order_by(ReleaseRow.created_at.desc())
                    .limit(1)
                )
            if row is None:
                raise NotFound(f"no release {release_id!r}")
            return _release(row)

    def list_releases(self) -> list[StoredRelease]:
        with self.catalog.session() as s:
            rows = s.scalars(select(ReleaseRow).order_by(ReleaseRow.created_at, ReleaseRow.id))
            return [_release(r) for r in rows]

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, release_id: str, suite: str, suite_id: str, code_version: str) -> str:
        run_id = ids.new_id()
        with self.catalog.session() as s:
            s.add(
                EvalRunRow(
                    id=run_id,
                    release_id=release_id,
                    suite=suite,
                    suite_id=suite_id,
                    code_version=code_version,
                    state="running",
                    scores={},
                    info={},
                )
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        scores: dict[str, float],
        info: dict[str, Any],
        results: list[dict[str, Any]],
    ) -> None:
        with self.catalog.session() as s:
            row = s.get(EvalRunRow, run_id)
            if row is None:
                raise NotFound(f"no evaluation run {run_id!r}")
            for i, r in enumerate(results):
                s.add(EvalResultRow(run_id=run_id, question_id=r["id"], ordinal=i, data=r))
            row.scores = scores
            row.info = info
            row.state = "succeeded"
            row.finished_at = utcnow()

    def fail_run(self, run_id: str, error: str) -> None:
        with self.catalog.session() as s:
            row = s.get(EvalRunRow, run_id)
            if row is not None:
                row.state = "failed"
                row.info = {**row.info, "error": error}
                row.finished_at = utcnow()

    def get_run(self, run_id: str, *, results: bool = True) -> StoredRun:
        with self.catalog.session() as s:
            row = s.get(EvalRunRow, run_id)
            if row is None:
                raise NotFound(f"no evaluation run {run_id!r}")
            data: list[dict[str, Any]] = []
            if results:
                data = list(
                    s.scalars(
                        select(EvalResultRow.data)
                        .where(EvalResultRow.run_id == run_id)
                        .order_by(EvalResultRow.ordinal)
                    )
                )
            return _run(row, data)

    def runs(
        self, release_id: str | None = None, *, suite: str | None = None, succeeded: bool = True
    ) -> list[StoredRun]:
        """Runs, newest first, without per-question results."""
        q = select(EvalRunRow).order_by(EvalRunRow.started_at.desc(), EvalRunRow.id)
        if release_id is not None:
            q = q.where(EvalRunRow.release_id == release_id)
        if suite is not None:
            q = q.where(EvalRunRow.suite == suite)
        if succeeded:
            q = q.where(EvalRunRow.state == "succeeded")
        with self.catalog.session() as s:
            return [_run(r, []) for r in s.scalars(q)]

    def latest_run(self, release_id: str, suite: str) -> StoredRun | None:
        found = self.runs(release_id, suite=suite)
        return self.get_run(found[0].id) if found else None

    # -- promotion --------------------------------------------------------------------------

    def record_decision(
        self,
        *,
        release_id: str,
        previous_id: str | None,
        suite: str | None,
        promoted: bool,
        reasons: list[str],
        evidence: dict[str, Any],
        decided_by: str,
    ) -> Decision:
        with self.catalog.session() as s:
            row = PromotionRow(
                id=ids.new_id(),
                release_id=release_id,
                previous_id=previous_id,
                suite=suite,
                promoted=promoted,
                reasons={"reasons": reasons},
                evidence=evidence,
                decided_by=decided_by,
                decided_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _decision(row)

    def production_id(self) -> str | None:
        with self.catalog.session() as s:
            return s.scalar(
                select(PromotionRow.release_id)
                .where(PromotionRow.promoted.is_(True))
                .order_by(PromotionRow.decided_at.desc(), PromotionRow.id.desc())
                .limit(1)
            )

    def decisions(self, release_id: str | None = None) -> list[Decision]:
        q = select(PromotionRow).order_by(PromotionRow.decided_at.desc())
        if release_id is not None:
            q = q.where(PromotionRow.release_id == release_id)
        with self.catalog.session() as s:
            return [_decision(r) for r in s.scalars(q)]


def _release(r: ReleaseRow) -> StoredRelease:
    return StoredRelease(r.id, r.name, r.description, dict(r.config), r.created_at)


def _run(r: EvalRunRow, results: list[dict[str, Any]]) -> StoredRun:
    return StoredRun(
        id=r.id,
        release_id=r.release_id,
        suite=r.suite,
        suite_id=r.suite_id,
        code_version=r.code_version,
        state=r.state,
        scores=dict(r.scores),
        info=dict(r.info),
        started_at=r.started_at,
        finished_at=r.finished_at,
        results=results,
    )


def _decision(r: PromotionRow) -> Decision:
    return Decision(
        id=r.id,
        release_id=r.release_id,
        previous_id=r.previous_id,
        suite=r.suite,
        promoted=r.promoted,
        reasons=list(r.reasons.get("reasons", [])),
        evidence=dict(r.evidence),
        decided_by=r.decided_by,
        decided_at=r.decided_at,
    )
