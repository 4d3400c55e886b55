"""Chunk records set aside for a Qdrant collection while chunking changes (Alembic 0005).

A re-chunking (:mod:`infra.migrate.vectors`) builds a new collection from chunk records the
catalog does not hold yet: they wait here under that collection's name. The switch swaps them
with the catalog's chunk records in one transaction, and the records it replaced wait here in
turn, under the name of the collection the alias left, until ``finalize`` (``rollback`` swaps
them back). A purged document takes its staged records with it (foreign key, cascade).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import String, delete, exists, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.domain import ChunkRecord, DocumentStatus
from stores.catalog import Catalog
from stores.catalog.models import ChunkRow, DocumentRow, StagedChunkRow, VersionRow
from stores.catalog.rows import CHUNK_COLUMNS, chunk_columns, chunk_record, in_batches

# A version joined to the live document it is the active version of.
_ACTIVE = (DocumentRow.id == VersionRow.document_id) & (
    DocumentRow.active_version == VersionRow.number
)
_LIVE = DocumentRow.status != DocumentStatus.DELETING


@dataclass(frozen=True)
class ActiveVersion:
    """The active version of a live document, with the ids of its chunk records."""

    version_id: str
    tenant_id: str
    document_id: str
    sha256: str
    chunk_ids: frozenset[str]


def active_versions(catalog: Catalog) -> dict[str, ActiveVersion]:
    """``version_id →`` the active version of every live document that has chunk records."""
    with catalog.session() as s:
        rows = s.execute(
            select(VersionRow.id, DocumentRow.tenant_id, DocumentRow.id, VersionRow.sha256)
            .join(DocumentRow, _ACTIVE)
            .where(_LIVE)
        ).all()
        chunks: dict[str, set[str]] = {}
        for batch in in_batches([r[0] for r in rows]):
            for cid, vid in s.execute(
                select(ChunkRow.id, ChunkRow.version_id).where(ChunkRow.version_id.in_(batch))
            ):
                chunks.setdefault(vid, set()).add(cid)
    return {
        v: ActiveVersion(v, t, d, sha, frozenset(chunks[v])) for v, t, d, sha in rows if v in chunks
    }


def stage(
    catalog: Catalog, collection: str, version_id: str, chunks: Sequence[ChunkRecord]
) -> bool:
    """The version's staged records for ``collection`` become exactly ``chunks`` (idempotent);
    False when the version is gone (its document was purged meanwhile)."""
    try:
        _stage(catalog, collection, version_id, chunks)
    except IntegrityError:
        return False
    return True


def _stage(
    catalog: Catalog, collection: str, version_id: str, chunks: Sequence[ChunkRecord]
) -> None:
    with catalog.session() as s:
        s.execute(
            delete(StagedChunkRow).where(
                StagedChunkRow.collection == collection, StagedChunkRow.version_id == version_id
            )
        )
        s.add_all(
            StagedChunkRow(collection=collection, **chunk_columns(c, version_id)) for c in chunks
        )


def staged_versions(catalog: Catalog, collection: str) -> dict[str, tuple[str, str]]:
    """``version_id → (tenant_id, document_id)`` of the versions staged for ``collection``."""
    with catalog.session() as s:
        rows = s.execute(
            select(StagedChunkRow.version_id, StagedChunkRow.tenant_id, StagedChunkRow.document_id)
            .where(StagedChunkRow.collection == collection)
            .distinct()
        )
        return {v: (t, d) for v, t, d in rows}


def staged_chunks(catalog: Catalog, collection: str, version_id: str) -> list[ChunkRecord]:
    with catalog.session() as s:
        rows = s.scalars(
            select(StagedChunkRow)
            .where(StagedChunkRow.collection == collection, StagedChunkRow.version_id == version_id)
            .order_by(StagedChunkRow.ordinal)
        )
        return [chunk_record(r) for r in rows]


def drop(catalog: Catalog, collection: str, version_ids: Sequence[str] | None = None) -> None:
    """Forget the records staged for ``collection`` (only these versions' when given)."""
    with catalog.session() as s:
        if version_ids is None:
            s.execute(delete(StagedChunkRow).where(StagedChunkRow.collection == collection))
            return
        for batch in in_batches(version_ids):
            s.execute(
                delete(StagedChunkRow).where(
                    StagedChunkRow.collection == collection, StagedChunkRow.version_id.in_(batch)
                )
            )


def counts(catalog: Catalog) -> dict[str, int]:
    """Staged records per collection."""
    with catalog.session() as s:
        rows = s.execute(
            select(StagedChunkRow.collection, func.count()).group_by(StagedChunkRow.collection)
        )
        return {c: int(n) for c, n in rows}


def expected_points(catalog: Catalog, collection: str) -> dict[str, tuple[str, str, str]]:
    """``chunk_id → (tenant_id, document_id, version_id)`` of what ``collection`` must hold:
    the records staged for it, and the catalog's records of every other version (documents
    being deleted excepted)."""
    with catalog.session() as s:
        staged = _staged_version_ids(s, collection)
        out: dict[str, tuple[str, str, str]] = {}
        c = ChunkRow
        for cid, tenant, doc, ver in s.execute(
            select(c.id, c.tenant_id, c.document_id, c.version_id)
            .join(DocumentRow, DocumentRow.id == c.document_id)
            .where(_LIVE)
        ):
            if ver not in staged:
                out[cid] = (tenant, doc, ver)
        st = StagedChunkRow
        for cid, tenant, doc, ver in s.execute(
            select(st.id, st.tenant_id, st.document_id, st.version_id)
            .join(DocumentRow, DocumentRow.id == st.document_id)
            .where(_LIVE, st.collection == collection)
        ):
            out[cid] = (tenant, doc, ver)
        return out


def ahead(catalog: Catalog, kept: set[str]) -> dict[str, set[str]]:
    """``version_id → chunk ids`` staged for collections being built (every collection but
    ``kept``, those holding the records of a collection an alias left): a re-chunking adds
    these to the graph ahead of its switch."""
    with catalog.session() as s:
        out: dict[str, set[str]] = {}
        for cid, vid in s.execute(
            select(StagedChunkRow.id, StagedChunkRow.version_id).where(
                StagedChunkRow.collection.not_in(sorted(kept))
            )
        ):
            out.setdefault(vid, set()).add(cid)
        return out


def swap(
    catalog: Catalog,
    *,
    take: str,
    keep: str | None,
) -> list[str]:
    """In one transaction: the active versions staged for ``take`` get those records as their
    chunk records, and the records they had are staged for ``keep`` (dropped when ``None``);
    whatever else was staged for ``take`` is dropped. Returns the swapped version ids."""
    cols = [getattr(ChunkRow, c) for c in CHUNK_COLUMNS]
    staged_cols = [getattr(StagedChunkRow, c) for c in CHUNK_COLUMNS]
    with catalog.session() as s:
        staged = _staged_version_ids(s, take)
        versions = sorted(staged & _active_with_chunks(s, staged))
        for batch in in_batches(versions):
            if keep is not None:
                s.execute(
                    delete(StagedChunkRow).where(
                        StagedChunkRow.collection == keep, StagedChunkRow.version_id.in_(batch)
                    )
                )
                s.execute(
                    insert(StagedChunkRow).from_select(
                        ["collection", *CHUNK_COLUMNS],
                        select(literal(keep, String), *cols).where(ChunkRow.version_id.in_(batch)),
                    )
                )
            s.execute(delete(ChunkRow).where(ChunkRow.version_id.in_(batch)))
            s.execute(
                insert(ChunkRow).from_select(
                    list(CHUNK_COLUMNS),
                    select(*staged_cols).where(
                        StagedChunkRow.collection == take, StagedChunkRow.version_id.in_(batch)
                    ),
                )
            )
            for vid, n in s.execute(
                select(ChunkRow.version_id, func.count())
                .where(ChunkRow.version_id.in_(batch))
                .group_by(ChunkRow.version_id)
            ).all():
                row = s.get(VersionRow, vid)
                if row is not None:
                    row.chunk_count = int(n)
        s.execute(delete(StagedChunkRow).where(StagedChunkRow.collection == take))
    return versions


def _staged_version_ids(s: Session, collection: str) -> set[str]:
    return set(
        s.scalars(
            select(StagedChunkRow.version_id)
            .where(StagedChunkRow.collection == collection)
            .distinct()
        )
    )


def _active_with_chunks(s: Session, candidates: Iterable[str]) -> set[str]:
    """Which of these versions are the active version of a live document with chunk records."""
    out: set[str] = set()
    for batch in in_batches(sorted(candidates)):
        out.update(
            s.scalars(
                select(VersionRow.id)
                .join(DocumentRow, _ACTIVE)
                .where(
                    VersionRow.id.in_(batch),
                    _LIVE,
                    exists().where(ChunkRow.version_id == VersionRow.id),
                )
            )
        )
    return out
