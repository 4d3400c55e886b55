"""The embedded graph store: graph tables in the catalog database (SQLite or PostgreSQL).

Writes of one version happen in one transaction. On PostgreSQL, a per-tenant advisory lock
serialises the relation recomputation of concurrent writers (two workers touching the same
entity pair would otherwise race on its row); SQLite already serialises writers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, exists, func, select, text
from sqlalchemy import insert as insert_stmt
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from stores.catalog import Catalog
from stores.catalog.models import (
    GraphChunkRow,
    GraphDocumentRow,
    GraphEntityRow,
    GraphLabelRow,
    GraphMentionRow,
    GraphReaderRow,
    GraphRelationRow,
)
from stores.catalog.rows import in_batches
from stores.graph import (
    RELATED_FACTOR,
    DocumentLabels,
    GraphChunk,
    GraphCounts,
    GraphEntity,
    LabelRef,
    VersionGraph,
)

# The relations of a document's labels, as Neo4j names them.
LABEL_RELATIONS = ("OF_TYPE", "FROM", "TO")


class RelationalGraphStore:
    """``owns``: the database is the graph's own (closed with the store), not the catalog's
    (which its runtime closes)."""

    def __init__(self, catalog: Catalog, *, owns: bool = False) -> None:
        self.catalog = catalog
        self._owns = owns

    def setup(self) -> None:
        """The tables come with the catalog's migrations."""
        self.catalog.migrate()

    def ping(self) -> None:
        self.catalog.ping()

    def close(self) -> None:
        if self._owns:
            self.catalog.dispose()

    def upsert_version(self, graph: VersionGraph) -> None:
        self._write(graph, replace_version=True)

    def add_chunks(self, graph: VersionGraph) -> None:
        self._write(graph, replace_version=False)

    def _write(self, graph: VersionGraph, *, replace_version: bool) -> None:
        """Write the version's chunks after removing the version's chunks (or only these)."""
        t = graph.tenant_id
        with self.catalog.session() as s:
            self._lock_tenant(s, t)
            if replace_version:
                touched = self._remove_chunks(s, t, GraphChunkRow.version_id == graph.version_id)
            else:
                touched = set()
                for some in in_batches([c.id for c in graph.chunks]):
                    touched |= self._remove_chunks(s, t, GraphChunkRow.id.in_(some))
            doc = s.get(GraphDocumentRow, graph.document_id)
            if doc is None:
                s.add(GraphDocumentRow(id=graph.document_id, tenant_id=t, title=graph.title))
            else:
                doc.title = graph.title
            s.flush()
            if graph.readers is not None:
                self._replace_readers(s, t, graph.document_id, graph.readers)
            for batch in in_batches(graph.chunks):
                s.add_all(
                    GraphChunkRow(
                        id=c.id,
                        tenant_id=t,
                        document_id=graph.document_id,
                        version_id=graph.version_id,
                        ordinal=c.ordinal,
                    )
                    for c in batch
                )
            s.flush()
            known = {e.key: e for e in graph.entities}
            insert = pg_insert if not self.catalog.is_sqlite else sqlite_insert
            for entities in in_batches(known.values()):
                s.execute(
                    insert(GraphEntityRow)
                    .values(
                        [
                            {"tenant_id": t, "key": e.key, "name": e.name, "kind": e.kind}
                            for e in entities
                        ]
                    )
                    .on_conflict_do_nothing()
                )
            mentions = [
                {"chunk_id": c.id, "entity_key": k, "tenant_id": t}
                for c in graph.chunks
                for k in sorted(set(c.entity_keys))
                if k in known
            ]
            for rows in in_batches(mentions):
                s.execute(insert_stmt(GraphMentionRow), rows)
            touched |= {m["entity_key"] for m in mentions}
            self._refresh(s, t, touched)

    def delete_version(self, tenant_id: str, document_id: str, version_id: str) -> None:
        with self.catalog.session() as s:
            self._lock_tenant(s, tenant_id)
            touched = self._remove_chunks(
                s,
                tenant_id,
                (GraphChunkRow.document_id == document_id)
                & (GraphChunkRow.version_id == version_id),
            )
            self._refresh(s, tenant_id, touched)

    def delete_document(self, tenant_id: str, document_id: str) -> None:
        with self.catalog.session() as s:
            self._lock_tenant(s, tenant_id)
            touched = self._remove_chunks(s, tenant_id, GraphChunkRow.document_id == document_id)
            s.execute(
                delete(GraphDocumentRow).where(
                    GraphDocumentRow.tenant_id == tenant_id, GraphDocumentRow.id == document_id
                )
            )
            s.execute(
                delete(GraphLabelRow).where(
                    GraphLabelRow.tenant_id == tenant_id, GraphLabelRow.document_id == document_id
                )
            )
            self._replace_readers(s, tenant_id, document_id, ())
            self._refresh(s, tenant_id, touched)

    def set_labels(self, tenant_id: str, document_id: str, labels: DocumentLabels) -> None:
        with self.catalog.session() as s:
            doc = s.get(GraphDocumentRow, document_id)
            if doc is None or doc.tenant_id != tenant_id:
                return
            s.execute(delete(GraphLabelRow).where(GraphLabelRow.document_id == document_id))
            for relation, ref in zip(
                LABEL_RELATIONS,
                (labels.document_type, labels.issuer, labels.recipient),
                strict=True,
            ):
                if ref is not None:
                    s.add(
                        GraphLabelRow(
                            document_id=document_id,
                            relation=relation,
                            key=ref.key,
                            tenant_id=tenant_id,
                            name=ref.name,
                        )
                    )

    def labels(self, tenant_id: str, document_id: str) -> DocumentLabels:
        with self.catalog.session() as s:
            found = {
                r.relation: LabelRef(r.key, r.name)
                for r in s.scalars(
                    select(GraphLabelRow).where(
                        GraphLabelRow.tenant_id == tenant_id,
                        GraphLabelRow.document_id == document_id,
                    )
                )
            }
        return DocumentLabels(found.get("OF_TYPE"), found.get("FROM"), found.get("TO"))

    def set_readers(self, tenant_id: str, document_id: str, readers: Sequence[str]) -> None:
        with self.catalog.session() as s:
            doc = s.get(GraphDocumentRow, document_id)
            if doc is None or doc.tenant_id != tenant_id:
                return
            self._replace_readers(s, tenant_id, document_id, readers)

    def readers(self, tenant_id: str, document_id: str) -> tuple[str, ...]:
        with self.catalog.session() as s:
            return tuple(
                s.scalars(
                    select(GraphReaderRow.principal)
                    .where(
                        GraphReaderRow.tenant_id == tenant_id,
                        GraphReaderRow.document_id == document_id,
                    )
                    .order_by(GraphReaderRow.principal)
                )
            )

    @staticmethod
    def _replace_readers(
        s: Session, tenant_id: str, document_id: str, readers: Sequence[str]
    ) -> None:
        s.execute(delete(GraphReaderRow).where(GraphReaderRow.document_id == document_id))
        s.add_all(
            GraphReaderRow(document_id=document_id, principal=p, tenant_id=tenant_id)
            for p in sorted(set(readers))
        )

    def counts(
        self, tenant_id: str, document_id: str, version_id: str | None = None
    ) -> GraphCounts:
        cond = (GraphChunkRow.tenant_id == tenant_id) & (GraphChunkRow.document_id == document_id)
        if version_id is not None:
            cond &= GraphChunkRow.version_id == version_id
        with self.catalog.session() as s:
            chunks = s.scalar(select(func.count()).select_from(GraphChunkRow).where(cond))
            mentions = s.scalar(
                select(func.count())
                .select_from(GraphMentionRow)
                .join(GraphChunkRow, GraphChunkRow.id == GraphMentionRow.chunk_id)
                .where(cond)
            )
        return GraphCounts(chunks=chunks or 0, mentions=mentions or 0)

    def entity_keys(self, tenant_id: str) -> set[str]:
        with self.catalog.session() as s:
            return set(
                s.scalars(select(GraphEntityRow.key).where(GraphEntityRow.tenant_id == tenant_id))
            )

    def relations(self, tenant_id: str) -> dict[tuple[str, str], int]:
        with self.catalog.session() as s:
            rows = s.execute(
                select(
                    GraphRelationRow.source_key,
                    GraphRelationRow.target_key,
                    GraphRelationRow.weight,
                ).where(GraphRelationRow.tenant_id == tenant_id)
            )
            return {(a, b): w for a, b, w in rows}

    def chunk_ids(self, tenant_id: str, document_id: str) -> set[str]:
        with self.catalog.session() as s:
            return set(
                s.scalars(
                    select(GraphChunkRow.id).where(
                        GraphChunkRow.tenant_id == tenant_id,
                        GraphChunkRow.document_id == document_id,
                    )
                )
            )

    def documents(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        q = select(GraphDocumentRow.id, GraphDocumentRow.tenant_id)
        if after is not None:
            q = q.where(GraphDocumentRow.id > after)
        with self.catalog.session() as s:
            return [(d, t) for d, t in s.execute(q.order_by(GraphDocumentRow.id).limit(limit))]

    def export_document(self, tenant_id: str, document_id: str) -> list[VersionGraph]:
        c = GraphChunkRow
        # None when it has none: an import then gives it none either.
        readers = self.readers(tenant_id, document_id) or None
        with self.catalog.session() as s:
            doc = s.get(GraphDocumentRow, document_id)
            title = doc.title if doc is not None and doc.tenant_id == tenant_id else ""
            chunks = s.execute(
                select(c.id, c.version_id, c.ordinal)
                .where(c.tenant_id == tenant_id, c.document_id == document_id)
                .order_by(c.version_id, c.ordinal)
            ).all()
            mentions: dict[str, list[str]] = {}
            for chunk_id, key in s.execute(
                select(GraphMentionRow.chunk_id, GraphMentionRow.entity_key)
                .join(c, c.id == GraphMentionRow.chunk_id)
                .where(c.tenant_id == tenant_id, c.document_id == document_id)
                .order_by(GraphMentionRow.chunk_id, GraphMentionRow.entity_key)
            ):
                mentions.setdefault(chunk_id, []).append(key)
            keys = sorted({k for ks in mentions.values() for k in ks})
            entities: dict[str, GraphEntity] = {}
            for batch in in_batches(keys):
                for e in s.scalars(
                    select(GraphEntityRow).where(
                        GraphEntityRow.tenant_id == tenant_id, GraphEntityRow.key.in_(batch)
                    )
                ):
                    entities[e.key] = GraphEntity(key=e.key, name=e.name, kind=e.kind)
        by_version: dict[str, list[GraphChunk]] = {}
        for chunk_id, version_id, ordinal in chunks:
            by_version.setdefault(version_id, []).append(
                GraphChunk(
                    id=chunk_id, ordinal=ordinal, entity_keys=tuple(mentions.get(chunk_id, ()))
                )
            )
        return [
            VersionGraph(
                tenant_id=tenant_id,
                document_id=document_id,
                version_id=version_id,
                title=title,
                chunks=version_chunks,
                entities=[
                    entities[k]
                    for k in sorted({k for ch in version_chunks for k in ch.entity_keys})
                    if k in entities
                ],
                readers=readers,
            )
            for version_id, version_chunks in by_version.items()
        ]

    def expand(
        self,
        tenant_id: str,
        keys: Sequence[str],
        limit: int,
        principals: Sequence[str] | None = None,
    ) -> dict[str, float]:
        if not keys:
            return {}
        m, c = GraphMentionRow, GraphChunkRow
        with self.catalog.session() as s:
            related = self._related(s, tenant_id, keys, principals) - set(keys)
            scores: dict[str, float] = {}
            for weight, wanted in ((1.0, list(keys)), (RELATED_FACTOR, sorted(related))):
                for batch in in_batches(wanted):
                    q = select(m.chunk_id, func.count()).where(
                        m.tenant_id == tenant_id, m.entity_key.in_(batch)
                    )
                    if principals is not None:
                        q = q.join(c, c.id == m.chunk_id).where(_readable(c, principals))
                    for chunk_id, n in s.execute(q.group_by(m.chunk_id)):
                        scores[chunk_id] = scores.get(chunk_id, 0.0) + weight * n
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return dict(best)

    @staticmethod
    def _related(
        s: Session, tenant_id: str, keys: Sequence[str], principals: Sequence[str] | None
    ) -> set[str]:
        """Entities RELATED to ``keys``: from the stored relations, or for a restricted caller
        recomputed from the chunks it may read that mention one of ``keys``."""
        related: set[str] = set()
        if principals is None:
            r = GraphRelationRow
            for a, b in s.execute(
                select(r.source_key, r.target_key).where(
                    r.tenant_id == tenant_id, r.source_key.in_(keys) | r.target_key.in_(keys)
                )
            ):
                related.update((a, b))
            return related
        m1, m2, c = aliased(GraphMentionRow), aliased(GraphMentionRow), GraphChunkRow
        for batch in in_batches(list(keys)):
            related |= set(
                s.scalars(
                    select(m2.entity_key)
                    .distinct()
                    .join(m1, m1.chunk_id == m2.chunk_id)
                    .join(c, c.id == m1.chunk_id)
                    .where(
                        m1.tenant_id == tenant_id,
                        m1.entity_key.in_(batch),
                        _readable(c, principals),
                    )
                )
            )
        return related

    # -- helpers ----------------------------------------------------------------------------

    def _lock_tenant(self, s: Session, tenant_id: str) -> None:
        if not self.catalog.is_sqlite:
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": tenant_id})

    @staticmethod
    def _remove_chunks(s: Session, tenant_id: str, where: object) -> set[str]:
        """Delete matching chunks (mentions cascade); return the entity keys they mentioned."""
        chunk_ids = list(
            s.scalars(select(GraphChunkRow.id).where(GraphChunkRow.tenant_id == tenant_id, where))  # type: ignore[arg-type]
        )
        touched: set[str] = set()
        for batch in in_batches(chunk_ids):
            touched |= set(
                s.scalars(
                    select(GraphMentionRow.entity_key).where(GraphMentionRow.chunk_id.in_(batch))
                )
            )
            # Explicit: SQLite enforces ON DELETE CASCADE only with foreign_keys=ON.
            s.execute(delete(GraphMentionRow).where(GraphMentionRow.chunk_id.in_(batch)))
            s.execute(delete(GraphChunkRow).where(GraphChunkRow.id.in_(batch)))
        return touched

    @staticmethod
    def _refresh(s: Session, tenant_id: str, touched: set[str]) -> None:
        """Recompute RELATED weights of the touched entities and drop unmentioned ones."""
        s.flush()
        m1, m2 = aliased(GraphMentionRow), aliased(GraphMentionRow)
        for batch in in_batches(sorted(touched)):
            s.execute(
                delete(GraphRelationRow).where(
                    GraphRelationRow.tenant_id == tenant_id,
                    GraphRelationRow.source_key.in_(batch) | GraphRelationRow.target_key.in_(batch),
                )
            )
        s.flush()
        pairs: dict[tuple[str, str], int] = {}
        for batch in in_batches(sorted(touched)):
            rows = s.execute(
                select(m1.entity_key, m2.entity_key, func.count())
                .join(m2, (m1.chunk_id == m2.chunk_id) & (m1.entity_key < m2.entity_key))
                .where(
                    m1.tenant_id == tenant_id,
                    m1.entity_key.in_(batch) | m2.entity_key.in_(batch),
                )
                .group_by(m1.entity_key, m2.entity_key)
            )
            pairs.update({(a, b): int(n) for a, b, n in rows})
        rows_out = [
            {"tenant_id": tenant_id, "source_key": a, "target_key": b, "weight": w}
            for (a, b), w in pairs.items()
        ]
        for out in in_batches(rows_out):
            s.execute(insert_stmt(GraphRelationRow), out)
        for batch in in_batches(sorted(touched)):
            mentioned = select(GraphMentionRow.entity_key).where(
                GraphMentionRow.tenant_id == tenant_id, GraphMentionRow.entity_key.in_(batch)
            )
            s.execute(
                delete(GraphEntityRow).where(
                    GraphEntityRow.tenant_id == tenant_id,
                    GraphEntityRow.key.in_(batch),
                    GraphEntityRow.key.not_in(mentioned),
                )
            )


def _readable(chunk: type[GraphChunkRow], principals: Sequence[str]) -> ColumnElement[bool]:
    """The chunk's document lets one of these principals read it."""
    return exists().where(
        GraphReaderRow.document_id == chunk.document_id, GraphReaderRow.principal.in_(principals)
    )
