"""The chunk records of each version: what every store's chunks derive from."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from core.domain import ChunkRecord
from stores.catalog.database import Database
from stores.catalog.models import ChunkRow
from stores.catalog.rows import chunk_columns, chunk_record, in_batches


class ChunkRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def replace(self, version_id: str, chunks: list[ChunkRecord]) -> None:
        """The version's chunks become exactly ``chunks`` (idempotent: same ids, same rows)."""
        with self.db.session() as s:
            s.execute(delete(ChunkRow).where(ChunkRow.version_id == version_id))
            s.add_all(ChunkRow(**chunk_columns(c, version_id)) for c in chunks)

    def of_version(self, version_id: str) -> list[ChunkRecord]:
        with self.db.session() as s:
            rows = s.scalars(
                select(ChunkRow).where(ChunkRow.version_id == version_id).order_by(ChunkRow.ordinal)
            )
            return [chunk_record(r) for r in rows]

    def drop(self, version_id: str) -> None:
        with self.db.session() as s:
            s.execute(delete(ChunkRow).where(ChunkRow.version_id == version_id))

    def count(self) -> int:
        """Chunk records of every tenant."""
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(ChunkRow)) or 0)

    def ids_by_document(self, document_ids: list[str]) -> dict[str, dict[str, str]]:
        """``document_id → {chunk_id: version_id}`` of every chunk record (active and
        in-progress versions: superseded ones are dropped when a newer version becomes
        active)."""
        out: dict[str, dict[str, str]] = {d: {} for d in document_ids}
        with self.db.session() as s:
            for batch in in_batches(document_ids):
                for cid, doc, ver in s.execute(
                    select(ChunkRow.id, ChunkRow.document_id, ChunkRow.version_id).where(
                        ChunkRow.document_id.in_(batch)
                    )
                ):
                    out[doc][cid] = ver
        return out
