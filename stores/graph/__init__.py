"""The knowledge graph behind a small Protocol: two real implementations side by side.

Model: Document –HAS_CHUNK→ Chunk –MENTIONS→ Entity, Entity –RELATED{weight}→ Entity, with the
tenant on every node; sorting adds Document –OF_TYPE→ DocumentType and Document –FROM→ / –TO→
Correspondent (:class:`DocumentLabels`). RELATED is derived, never written directly: its weight
is the number of chunks that mention both entities, recomputed for the entities a write or
delete touches, so deleting a version lowers the weights it contributed. Entities nothing
mentions any more are removed with their relations, so nothing is orphaned.

* :class:`~stores.graph.relational.RelationalGraphStore`: tables in the catalog database
  (SQLite or PostgreSQL), the embedded default.
* :class:`~stores.graph.neo4j.Neo4jGraphStore`: Cypher through the official driver, ``MERGE``
  on constrained keys, batched ``UNWIND``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stores import Lifecycle

# A related entity's mention counts this much of a direct mention in graph expansion.
RELATED_FACTOR = 0.5


@dataclass(frozen=True)
class GraphEntity:
    key: str
    name: str
    kind: str


@dataclass(frozen=True)
class GraphChunk:
    id: str
    ordinal: int
    entity_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionGraph:
    """Everything one document version contributes to the graph."""

    tenant_id: str
    document_id: str
    version_id: str
    title: str
    chunks: Sequence[GraphChunk]
    entities: Sequence[GraphEntity] = field(default_factory=tuple)
    # Access lists (issue #19): the principals that may read the document; None: leave the
    # document's as they are (a new document: nobody, until GraphWriter.set_readers).
    readers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class LabelRef:
    """A vocabulary entry a document is linked to (a document type, a correspondent)."""

    key: str
    name: str


@dataclass(frozen=True)
class DocumentLabels:
    """What sorting decided about a document (issue #17): ``Document -OF_TYPE-> DocumentType``,
    ``Document -FROM-> Correspondent`` (its issuer) and ``Document -TO-> Correspondent`` (its
    recipient), each absent when ``None``. Type and correspondent nodes are keyed by tenant and
    key, shared by every document linked to them."""

    document_type: LabelRef | None = None
    issuer: LabelRef | None = None
    recipient: LabelRef | None = None


@dataclass(frozen=True)
class GraphCounts:
    chunks: int
    mentions: int


class GraphWriter(Protocol):
    """Writes of ingestion, deletion and migration.

    ``upsert_version`` replaces whatever the version had (idempotent: running it twice leaves one
    copy); ``add_chunks`` upserts chunks beside the ones the version already has.
    ``delete_version`` / ``delete_document`` remove chunks and mentions, then entities left
    unmentioned; deleting what is absent is a no-op. Unreachable engines raise
    :class:`core.errors.StoreUnavailable` (retryable).
    """

    def setup(self) -> None:
        """Create what the engine needs (constraints, indexes, tables); idempotent."""
        ...

    def upsert_version(self, graph: VersionGraph) -> None: ...

    def add_chunks(self, graph: VersionGraph) -> None:
        """Upsert these chunks of the version (their mentions replaced, entities merged) and
        leave its other chunks in place: a re-chunking adds the new chunks beside the old ones
        until its switch. Idempotent."""
        ...

    def delete_version(self, tenant_id: str, document_id: str, version_id: str) -> None: ...

    def delete_document(self, tenant_id: str, document_id: str) -> None: ...

    def set_labels(self, tenant_id: str, document_id: str, labels: DocumentLabels) -> None:
        """Replace the document's type and correspondent links with ``labels`` (idempotent);
        a no-op when the store holds no such document of the tenant. ``delete_document``
        removes them with the document."""
        ...

    def set_readers(self, tenant_id: str, document_id: str, readers: Sequence[str]) -> None:
        """Replace the principals that may read the document (issue #19; idempotent); a no-op
        when the store holds no such document of the tenant. A document nobody was given
        readers is read by nobody."""
        ...


class GraphSearcher(Protocol):
    """The read of retrieval; never crosses tenants."""

    def expand(
        self,
        tenant_id: str,
        keys: Sequence[str],
        limit: int,
        principals: Sequence[str] | None = None,
    ) -> dict[str, float]:
        """Chunks reached from these entities: ``chunk_id → score``, best first, at most
        ``limit``. A chunk scores 1 per entity of ``keys`` it mentions, plus
        ``RELATED_FACTOR`` per entity it mentions that is RELATED to one of ``keys``.

        ``principals`` (issue #19): traverse only chunks of documents whose readers include
        one of them, and only relations a readable chunk supports (two entities are related
        for this caller when a chunk it may read mentions both), so a forbidden document
        lends neither its chunks nor its entities' relations. ``None``: no restriction."""
        ...


class GraphInspector(Protocol):
    """What verification, migration and the document view read; never crosses tenants."""

    def counts(
        self, tenant_id: str, document_id: str, version_id: str | None = None
    ) -> GraphCounts: ...

    def entity_keys(self, tenant_id: str) -> set[str]: ...

    def relations(self, tenant_id: str) -> dict[tuple[str, str], int]: ...

    def chunk_ids(self, tenant_id: str, document_id: str) -> set[str]: ...

    def documents(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        """``(document_id, tenant_id)`` of the documents held, by id, the first ``limit`` after
        ``after`` (a resumable scan for backfills and verification)."""
        ...

    def labels(self, tenant_id: str, document_id: str) -> DocumentLabels:
        """The document's type and correspondent links (empty for an unknown document)."""
        ...

    def readers(self, tenant_id: str, document_id: str) -> tuple[str, ...]:
        """The principals that may read the document, sorted (empty when unknown)."""
        ...

    def export_document(self, tenant_id: str, document_id: str) -> list[VersionGraph]:
        """Everything held for the document, one :class:`VersionGraph` per version (ordered by
        version id, chunks by ordinal, entities by key): ``upsert_version`` of each rebuilds it
        in another store. ``[]`` when the store holds no chunk of it."""
        ...


class GraphStore(GraphWriter, GraphSearcher, GraphInspector, Lifecycle, Protocol):
    """A tenant-partitioned graph of documents, chunks and entities: every role."""
