"""Catalog reads the migrations need that the request paths do not (all tenants at once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from core.domain import DocumentStatus, JobState
from stores.catalog import Catalog
from stores.catalog.models import ChunkRow, DocumentRow, JobRow, VersionRow


@dataclass(frozen=True)
class LiveDocument:
    tenant_id: str
    document_id: str
    active_version_id: str | None
    busy: bool  # a job is still queued or running for it: its stores may legitimately differ


def live_documents(
    catalog: Catalog, after: str | None = None, limit: int = 1000
) -> list[LiveDocument]:
    """Documents not being deleted, by id, the first ``limit`` after ``after``."""
    q = (
        select(DocumentRow.id, DocumentRow.tenant_id, VersionRow.id)
        .outerjoin(
            VersionRow,
            (VersionRow.document_id == DocumentRow.id)
            & (VersionRow.number == DocumentRow.active_version),
        )
        .where(DocumentRow.status != DocumentStatus.DELETING)
    )
    if after is not None:
        q = q.where(DocumentRow.id > after)
    with catalog.session() as s:
        rows = s.execute(q.order_by(DocumentRow.id).limit(limit)).all()
        ids = [r[0] for r in rows]
        busy = set(
            s.scalars(
                select(JobRow.document_id).where(
                    JobRow.document_id.in_(ids),
                    JobRow.state.in_([JobState.QUEUED, JobState.RUNNING]),
                )
            )
        )
    return [LiveDocument(t, d, v, d in busy) for d, t, v in rows]


def all_live_documents(catalog: Catalog) -> list[LiveDocument]:
    out: list[LiveDocument] = []
    after: str | None = None
    while page := live_documents(catalog, after):
        out.extend(page)
        after = page[-1].document_id
    return out


def edited_since(catalog: Catalog, since: datetime) -> list[tuple[str, str]]:
    """``(tenant_id, document_id)`` of the documents updated since then."""
    with catalog.session() as s:
        rows = s.execute(
            select(DocumentRow.tenant_id, DocumentRow.id).where(DocumentRow.updated_at >= since)
        )
        return [(t, d) for t, d in rows]


def document_ids(catalog: Catalog) -> set[str]:
    """Every document the catalog knows, deleting ones included."""
    with catalog.session() as s:
        return set(s.scalars(select(DocumentRow.id)))


def chunk_count(catalog: Catalog) -> int:
    with catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(ChunkRow)) or 0)


def chunk_ids_by_document(catalog: Catalog, document_ids: list[str]) -> dict[str, dict[str, str]]:
    """``document_id → {chunk_id: version_id}`` of every chunk record (active and in-progress
    versions: superseded ones are dropped when a newer version becomes active)."""
    out: dict[str, dict[str, str]] = {d: {} for d in document_ids}
    with catalog.session() as s:
        for i in range(0, len(document_ids), 500):
            for cid, doc, ver in s.execute(
                select(ChunkRow.id, ChunkRow.document_id, ChunkRow.version_id).where(
                    ChunkRow.document_id.in_(document_ids[i : i + 500])
                )
            ):
                out[doc][cid] = ver
    return out
