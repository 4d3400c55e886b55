"""Vector storage: the point and filter types, and the Protocols by role.

One collection per embedding model (the model is part of the name, not of the point id), with
a named dense vector, a sparse vector whose IDF the engine applies at query time, and a
multivector of the chunk's sentences that rescores candidates by their best sentence (MaxSim;
not indexed: it only ever scores the ids a query names). Point ids are the chunk ids (uuid5),
so every write is an upsert.

Callers hold the narrowest role they need: ingestion writes (:class:`VectorWriter`), retrieval
searches (:class:`VectorSearcher`), verification inspects (:class:`VectorInspector`), the
re-embedding migration manages physical collections behind an alias
(:class:`VectorCollections`). The implementations, side by side, implement them all
(:class:`VectorStore`):

* :class:`~stores.vectors.edge.EdgeVectorStore`: Qdrant's own engine in-process (Qdrant Edge),
  the embedded default, one shard folder per collection;
* :class:`~stores.vectors.qdrant.QdrantVectorStore`: a Qdrant server through qdrant-client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.domain import FieldCondition
from stores import Lifecycle

DENSE = "dense"
SPARSE = "sparse"
SENTENCES = "sentences"
# Payload fields filtered on (the tenant always): keyword and float indexes.
KEYWORD_FIELDS = (
    "collection",
    "document_id",
    "version_id",
    "tags",
    "document_type",
    "correspondents",
)
FLOAT_FIELDS = ("uploaded_at",)


@dataclass(frozen=True)
class VectorPoint:
    """One chunk as stored: ids and filterable fields in ``payload`` (``tenant_id``,
    ``document_id``, ``version_id``, ``collection``, ``tags`` ...)."""

    id: str
    dense: list[float]  # empty: not embedded yet (found by its terms only until it is)
    sparse_indices: list[int]
    sparse_values: list[float]
    payload: dict[str, Any] = field(default_factory=dict)
    sentences: list[list[float]] = field(default_factory=list)  # one vector per sentence


@dataclass(frozen=True)
class VectorHit:
    id: str
    score: float
    payload: dict[str, Any]
    dense: list[float] | None = None


@dataclass(frozen=True)
class SearchFilter:
    """Narrows a search; the tenant is mandatory and applied inside the store's query. Each
    adapter translates it into its engine's filter."""

    tenant_id: str
    collections: Sequence[str] | None = None
    tags: Sequence[str] | None = None  # any of
    metadata: dict[str, Any] | None = None  # equality on each key
    document_ids: Sequence[str] | None = None
    uploaded_after: float | None = None  # epoch seconds
    uploaded_before: float | None = None
    # Sorting (issue #17): the applied type (any of), a correspondent (any of), typed fields
    # (payload ``fields.<key>``: numbers compared, texts equal).
    document_types: Sequence[str] | None = None
    correspondents: Sequence[str] | None = None
    fields: Sequence[FieldCondition] = ()
    # Access lists (issue #19): documents the caller may not read, never returned (none of
    # their points, whatever stage finds them).
    hidden_document_ids: Sequence[str] = ()


def collection_name(prefix: str, model_id: str) -> str:
    """``gedrag_all_minilm_l6_v2``: one collection per embedding model."""
    slug = re.sub(r"[^a-z0-9]+", "_", model_id.lower().rsplit("/", 1)[-1]).strip("_")
    return f"{prefix}_{slug}"


class VectorWriter(Protocol):
    """Writes of ingestion and deletion. ``upsert`` overwrites points with the same id
    (idempotent); the deletes are no-ops when nothing matches. Unreachable stores raise
    :class:`core.errors.StoreUnavailable` (retryable)."""

    def ensure_collection(self, dim: int) -> None:
        """Create the collection for ``dim``-d vectors (once); :class:`ConfigurationError`
        when it exists with another size."""
        ...

    def upsert(self, points: Sequence[VectorPoint]) -> None: ...

    def delete(self, tenant_id: str, document_id: str, version_id: str | None = None) -> None:
        """The points of a document, or of one of its versions."""
        ...

    def delete_ids(self, point_ids: Sequence[str]) -> None: ...

    def set_payload(self, tenant_id: str, document_id: str, payload: dict[str, Any]) -> None:
        """Merge these payload keys into every point of the document (no re-embedding)."""
        ...


class VectorSearcher(Protocol):
    """Reads of retrieval; every one is filtered by the tenant inside the store."""

    def search_dense(
        self, vector: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        """Nearest chunks by cosine similarity, best first, with their dense vectors."""
        ...

    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        """Best BM25-style matches, best first (the engine applies IDF to the stored term
        weights: ``ln((N - df + 0.5) / (df + 0.5) + 1)``)."""
        ...

    def fetch(self, point_ids: Sequence[str], flt: SearchFilter) -> list[VectorHit]:
        """These points, when they pass the filter (graph expansion brings ids)."""
        ...

    def score_sentences(
        self, vector: Sequence[float], point_ids: Sequence[str], flt: SearchFilter
    ) -> dict[str, float]:
        """``point id → best cosine between the vector and one of its sentences`` for these
        points, when they pass the filter and hold sentence vectors (others are absent)."""
        ...


class VectorInspector(Protocol):
    """What verification and the ingestion's completeness check read."""

    def count(self, tenant_id: str, document_id: str, version_id: str | None = None) -> int: ...

    def missing(self, point_ids: Sequence[str]) -> set[str]:
        """Which of these ids hold no point (lookups by id, no scan)."""
        ...

    def point_ids(self, tenant_id: str, document_id: str) -> set[str]: ...

    def point_versions(self, tenant_id: str, document_id: str) -> dict[str, str]:
        """``point id → version_id`` of the document's points."""
        ...

    def point_index(self) -> dict[tuple[str, str], dict[str, str]]:
        """``(tenant_id, document_id) → {point id: version_id}`` of every point, one scan."""
        ...


class VectorCollections(Protocol):
    """Physical collections behind a logical name (an alias), for re-embedding while the
    logical name serves: ``sibling`` addresses another collection through the same engine,
    ``point_alias`` moves the logical name atomically."""

    @property
    def collection(self) -> str:
        """The name this store reads and writes (an alias or a plain collection)."""
        ...

    def sibling(self, collection: str) -> VectorStore:
        """Another collection of the same engine (created on its first ``ensure_collection``)."""
        ...

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the store: no other thread of this process reads or writes it meanwhile (an
        embedded engine; a server has no such lock)."""
        ...

    def dim(self) -> int | None:
        """Dense vector size of the collection, ``None`` when it does not exist."""
        ...

    def has_sentences(self) -> bool:
        """Whether the collection stores sentence vectors (made by an earlier gedrag: not)."""
        ...

    def alias_target(self) -> str | None:
        """The collection this store's name is an alias of (``None``: a plain collection or
        nothing)."""
        ...

    def point_alias(self, target: str) -> None:
        """Make this store's name an alias of ``target`` in one atomic step."""
        ...

    def drop_collection(self, name: str) -> None:
        """Delete a physical collection (no-op when absent)."""
        ...

    def scroll_points(self, offset: Any = None, limit: int = 256) -> tuple[list[VectorPoint], Any]:
        """One page of whole points (vectors and payload) and the offset of the next (``None``
        after the last page)."""
        ...


class VectorStore(
    VectorWriter, VectorSearcher, VectorInspector, VectorCollections, Lifecycle, Protocol
):
    """Every role: what the embedded and server implementations provide."""
