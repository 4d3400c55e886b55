"""The vector store on a Qdrant server, through qdrant-client (production).

The embedded default is :mod:`stores.vectors.edge` (Qdrant's engine in-process); both pass the
same conformance suite. One collection per embedding model, with a named dense vector (HNSW), a
sparse vector whose IDF Qdrant applies at query time, and a multivector of the chunk's
sentences that rescores candidates by their best sentence (MaxSim; not indexed: it only ever
scores the ids a query names); payload indexes on the filtered fields, the tenant as the
tenant key. Point ids are the chunk ids (uuid5), so every write is an upsert.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from core.errors import ConfigurationError, InvalidInput, StoreUnavailable
from stores.vectors import (
    DENSE,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    SENTENCES,
    SPARSE,
    SearchFilter,
    VectorHit,
    VectorPoint,
)

log = logging.getLogger(__name__)

LAYOUT_TTL_S = 60.0


def to_filter(flt: SearchFilter) -> models.Filter:
    """The search filter as Qdrant's: every condition must hold, the tenant always."""
    must: list[models.Condition] = [_match("tenant_id", flt.tenant_id)]
    if flt.collections:
        must.append(_any("collection", flt.collections))
    if flt.tags:
        must.append(_any("tags", flt.tags))
    if flt.document_ids:
        must.append(_any("document_id", flt.document_ids))
    for key, value in (flt.metadata or {}).items():
        must.append(_equal(f"metadata.{key}", value))
    if flt.uploaded_after is not None or flt.uploaded_before is not None:
        must.append(
            models.FieldCondition(
                key="uploaded_at",
                range=models.Range(gte=flt.uploaded_after, lte=flt.uploaded_before),
            )
        )
    if flt.document_types:
        must.append(_any("document_type", flt.document_types))
    if flt.correspondents:
        must.append(_any("correspondents", flt.correspondents))
    for cond in flt.fields:
        key = f"fields.{cond.key}"
        if isinstance(cond.value, str):
            must.append(_match(key, cond.value))
        else:
            bounds = (
                {cond.op: float(cond.value)}
                if cond.op != "eq"
                else {
                    "gte": float(cond.value),
                    "lte": float(cond.value),
                }
            )
            must.append(models.FieldCondition(key=key, range=models.Range(**bounds)))
    if flt.hidden_document_ids:
        return models.Filter(must=must, must_not=[_any("document_id", flt.hidden_document_ids)])
    return models.Filter(must=must)


def _match(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _equal(key: str, value: Any) -> models.FieldCondition:
    """Equality on a metadata value: strings, integers and booleans match exactly; a float
    matches as the one-point range [v, v] (Qdrant's match takes no floats)."""
    if isinstance(value, bool | int | str):
        return _match(key, value)
    if isinstance(value, float):
        return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
    raise InvalidInput(
        f"metadata filter {key.removeprefix('metadata.')!r}: a string, number or boolean is "
        f"needed, not {type(value).__name__}",
        field="metadata",
    )


def _any(key: str, values: Sequence[str]) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))


class QdrantVectorStore:
    """A Qdrant server through qdrant-client."""

    def __init__(
        self,
        collection: str,
        *,
        url: str,
        api_key: str | None = None,
        timeout_s: int = 10,
        shards: dict[str, int] | None = None,
    ) -> None:
        """``shards``: ``shard_number`` / ``replication_factor`` of new collections on a
        distributed Qdrant server (Qdrant's defaults when absent)."""
        self.collection = collection
        self._shards = shards or {}
        # Reentrant: a migration holds it across several calls to switch an alias atomically.
        self._lock = threading.RLock()
        self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout_s)
        self._ready = False
        self._sentences: bool | None = None  # the collection has the sentence multivector
        self._sentences_at = 0.0  # when that was read (an alias may move to another collection)

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
            raise StoreUnavailable(f"Qdrant unavailable during {what}: {exc}") from exc
        except UnexpectedResponse as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise StoreUnavailable(f"Qdrant error during {what}: {exc}") from exc
            if exc.status_code == 400 and "dimension error" in str(exc):
                raise ConfigurationError(f"Qdrant, {what}: {exc}") from exc
            raise

    def ping(self) -> None:
        with self._call("ping"):
            self.client.get_collections()

    def ensure_collection(self, dim: int) -> None:
        if self._ready:
            return
        with self._call("create collection"):
            if not self.client.collection_exists(self.collection):
                self.client.create_collection(
                    self.collection,
                    vectors_config={
                        DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE),
                        SENTENCES: models.VectorParams(
                            size=dim,
                            distance=models.Distance.COSINE,
                            multivector_config=models.MultiVectorConfig(
                                comparator=models.MultiVectorComparator.MAX_SIM
                            ),
                            hnsw_config=models.HnswConfigDiff(m=0),
                        ),
                    },
                    sparse_vectors_config={
                        SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                    **self._shards,  # type: ignore[arg-type]
                )
                self._create_indexes()
            else:
                info = self.client.get_collection(self.collection)
                vectors = info.config.params.vectors
                size = vectors[DENSE].size if isinstance(vectors, dict) else None
                if size != dim:
                    raise ConfigurationError(
                        f"Qdrant collection {self.collection!r} holds {size}-d vectors, "
                        f"the embedding model makes {dim}-d ones"
                    )
        self._ready = True
        if not self.has_sentences():
            log.warning(
                "Qdrant collection %r has no sentence vectors (made by an earlier gedrag): "
                "searches score its chunks by their own vector until `gedrag migrate reembed "
                "--switch` rebuilds it with them",
                self.collection,
            )

    def has_sentences(self) -> bool:
        """Whether the collection stores sentence vectors (collections made before them do
        not; a re-embedding builds a new one that does). Read again after a while: another
        process may move the alias to a collection of the other kind."""
        now = time.monotonic()
        if self._sentences is None or now - self._sentences_at > LAYOUT_TTL_S:
            with self._call("collection info"):
                if not self.client.collection_exists(self.collection):
                    return False
                vectors = self.client.get_collection(self.collection).config.params.vectors
            self._sentences = isinstance(vectors, dict) and SENTENCES in vectors
            self._sentences_at = now
        return self._sentences

    def _create_indexes(self) -> None:
        self.client.create_payload_index(
            self.collection,
            "tenant_id",
            models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
        )
        for name in KEYWORD_FIELDS:
            self.client.create_payload_index(
                self.collection, name, models.PayloadSchemaType.KEYWORD
            )
        for name in FLOAT_FIELDS:
            self.client.create_payload_index(self.collection, name, models.PayloadSchemaType.FLOAT)

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        with self._call("upsert"):
            try:
                self.client.upsert(self.collection, points=self._structs(points), wait=True)
            except UnexpectedResponse as exc:
                # The alias moved (another process) to a collection without sentence vectors.
                if exc.status_code != 400 or SENTENCES not in str(exc):
                    raise
                self._sentences = None
                self.client.upsert(self.collection, points=self._structs(points), wait=True)

    def _structs(self, points: Sequence[VectorPoint]) -> list[models.PointStruct]:
        sentences = self.has_sentences()
        return [
            models.PointStruct(
                id=p.id,
                # No dense vector yet (a chunk searchable by its terms before its embedding:
                # progressive indexing): the point has the sparse vector only.
                vector={
                    **({DENSE: p.dense} if p.dense else {}),
                    SPARSE: models.SparseVector(indices=p.sparse_indices, values=p.sparse_values),
                    **({SENTENCES: p.sentences} if p.sentences and sentences else {}),
                },
                payload=p.payload,
            )
            for p in points
        ]

    def delete(self, tenant_id: str, document_id: str, version_id: str | None = None) -> None:
        if not self._exists():
            return
        with self._call("delete"):
            self.client.delete(
                self.collection,
                points_selector=models.FilterSelector(
                    filter=_filter(tenant_id, document_id, version_id)
                ),
                wait=True,
            )

    def count(self, tenant_id: str, document_id: str, version_id: str | None = None) -> int:
        if not self._exists():
            return 0
        with self._call("count"):
            result = self.client.count(
                self.collection,
                count_filter=_filter(tenant_id, document_id, version_id),
                exact=True,
            )
        return int(result.count)

    def set_payload(self, tenant_id: str, document_id: str, payload: dict[str, Any]) -> None:
        if not self._exists():
            return
        with self._call("set payload"):
            self.client.set_payload(
                self.collection, payload=payload, points=_filter(tenant_id, document_id), wait=True
            )

    def search_dense(
        self, vector: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        """Nearest chunks by cosine similarity, with their dense vectors (for diversity)."""
        return self._query(list(vector), DENSE, flt, limit)

    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        """Best BM25-style matches (Qdrant applies IDF to the stored term weights)."""
        if not indices:
            return []
        query = models.SparseVector(indices=list(indices), values=list(values))
        return self._query(query, SPARSE, flt, limit)

    def _query(self, query: Any, using: str, flt: SearchFilter, limit: int) -> list[VectorHit]:
        if not self._exists():
            return []
        with self._call("search"):
            result = self.client.query_points(
                self.collection,
                query=query,
                using=using,
                query_filter=to_filter(flt),
                limit=limit,
                with_payload=True,
                with_vectors=[DENSE],
            )
        return [_hit(p) for p in result.points]

    def fetch(self, point_ids: Sequence[str], flt: SearchFilter) -> list[VectorHit]:
        """These points, when they pass the filter (graph expansion brings ids)."""
        if not point_ids or not self._exists():
            return []
        by_id = models.HasIdCondition(has_id=list(point_ids))
        base = to_filter(flt)
        with self._call("fetch"):
            points, _ = self.client.scroll(
                self.collection,
                scroll_filter=models.Filter(
                    must=[by_id, *(base.must or [])], must_not=base.must_not
                ),
                limit=len(point_ids),
                with_payload=True,
                with_vectors=[DENSE],
            )
        return [_hit(p) for p in points]

    def score_sentences(
        self, vector: Sequence[float], point_ids: Sequence[str], flt: SearchFilter
    ) -> dict[str, float]:
        """MaxSim of the query vector over each point's sentences (only these points)."""
        if not point_ids or not self._exists() or not self.has_sentences():
            return {}
        by_id = models.HasIdCondition(has_id=list(point_ids))
        base = to_filter(flt)
        with self._call("sentence scores"):
            result = self.client.query_points(
                self.collection,
                query=[list(vector)],
                using=SENTENCES,
                query_filter=models.Filter(
                    must=[by_id, *(base.must or [])], must_not=base.must_not
                ),
                limit=len(point_ids),
                with_payload=False,
                with_vectors=False,
            )
        return {str(p.id): float(p.score) for p in result.points}

    def missing(self, point_ids: Sequence[str]) -> set[str]:
        """Which of these ids hold no point (lookups by id, no scan)."""
        if not point_ids:
            return set()
        if not self._exists():
            return set(point_ids)
        found: set[str] = set()
        with self._call("retrieve"):
            for start in range(0, len(point_ids), 1000):
                points = self.client.retrieve(
                    self.collection,
                    ids=list(point_ids[start : start + 1000]),
                    with_payload=False,
                    with_vectors=False,
                )
                found.update(str(p.id) for p in points)
        return set(point_ids) - found

    def delete_ids(self, point_ids: Sequence[str]) -> None:
        if not point_ids or not self._exists():
            return
        with self._call("delete"):
            self.client.delete(
                self.collection,
                points_selector=models.PointIdsList(points=list(point_ids)),
                wait=True,
            )

    def point_ids(self, tenant_id: str, document_id: str) -> set[str]:
        if not self._exists():
            return set()
        ids: set[str] = set()
        offset: Any = None
        with self._call("scroll"):
            while True:
                points, offset = self.client.scroll(
                    self.collection,
                    scroll_filter=_filter(tenant_id, document_id),
                    limit=1000,
                    offset=offset,
                    with_payload=False,
                    with_vectors=False,
                )
                ids.update(str(p.id) for p in points)
                if offset is None:
                    return ids

    def close(self) -> None:
        self.client.close()

    # -- for migrations (infra.migrate): not part of the VectorStore Protocol ----------------

    def sibling(self, collection: str) -> QdrantVectorStore:
        """Another collection through the same client."""
        other = copy.copy(self)  # shares client, lock and creation options
        other.collection = collection
        other._ready = False
        other._sentences = None
        return other

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Serialise this process's migration steps (other processes share the server: the
        alias switch itself is one atomic request)."""
        with self._lock:
            yield

    def scroll_points(self, offset: Any = None, limit: int = 256) -> tuple[list[VectorPoint], Any]:
        """One page of whole points (vectors and payload) and the offset of the next."""
        if not self._exists():
            return [], None
        with self._call("scroll"):
            points, nxt = self.client.scroll(
                self.collection, limit=limit, offset=offset, with_payload=True, with_vectors=True
            )
        return [_point(p) for p in points], nxt

    def point_versions(self, tenant_id: str, document_id: str) -> dict[str, str]:
        """``point id → version_id`` of the document's points."""
        return {
            pid: str(payload.get("version_id"))
            for pid, payload in self._scroll_payloads(
                _filter(tenant_id, document_id), ["version_id"]
            )
        }

    def point_index(self) -> dict[tuple[str, str], dict[str, str]]:
        """``(tenant_id, document_id) → {point id: version_id}`` of every point, in one scan."""
        out: dict[tuple[str, str], dict[str, str]] = {}
        fields = ["tenant_id", "document_id", "version_id"]
        for pid, payload in self._scroll_payloads(None, fields):
            key = (str(payload.get("tenant_id")), str(payload.get("document_id")))
            out.setdefault(key, {})[pid] = str(payload.get("version_id"))
        return out

    def _scroll_payloads(
        self, flt: models.Filter | None, fields: list[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        if not self._exists():
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        offset: Any = None
        with self._call("scroll"):
            while True:
                points, offset = self.client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=1000,
                    offset=offset,
                    with_payload=fields,
                    with_vectors=False,
                )
                out.extend((str(p.id), p.payload or {}) for p in points)
                if offset is None:
                    return out

    def dim(self) -> int | None:
        """Dense vector size of the collection, ``None`` when it does not exist."""
        with self._call("collection info"):
            if not self.client.collection_exists(self.collection):
                return None
            vectors = self.client.get_collection(self.collection).config.params.vectors
        return vectors[DENSE].size if isinstance(vectors, dict) else None

    def point_alias(self, target: str) -> None:
        """Point this store's name at ``target`` in one request (atomic); a plain collection of
        that name must have been dropped first."""
        with self._lock:
            ops: list[Any] = []
            if self.alias_target() is not None:
                ops.append(
                    models.DeleteAliasOperation(
                        delete_alias=models.DeleteAlias(alias_name=self.collection)
                    )
                )
            ops.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(
                        collection_name=target, alias_name=self.collection
                    )
                )
            )
            with self._call("switch alias"):
                self.client.update_collection_aliases(change_aliases_operations=ops)
            self._sentences = None
            self._ready = False

    def drop_collection(self, name: str) -> None:
        """Delete a physical collection (no-op when absent)."""
        with self._call("delete collection"):
            if self.client.collection_exists(name):
                self.client.delete_collection(name)

    def alias_target(self) -> str | None:
        """The collection this store's name is an alias of (``None``: a plain collection or
        nothing)."""
        with self._call("aliases"):
            for a in self.client.get_aliases().aliases:
                if a.alias_name == self.collection:
                    return str(a.collection_name)
        return None

    def _exists(self) -> bool:
        if self._ready:
            return True
        with self._call("collection lookup"):
            return bool(self.client.collection_exists(self.collection))


def _point(p: Any) -> VectorPoint:
    sparse = p.vector.get(SPARSE)
    return VectorPoint(
        id=str(p.id),
        dense=list(p.vector[DENSE]),
        sparse_indices=list(sparse.indices) if sparse else [],
        sparse_values=list(sparse.values) if sparse else [],
        payload=p.payload or {},
        sentences=[list(v) for v in p.vector.get(SENTENCES) or []],
    )


def _hit(p: Any) -> VectorHit:
    vector = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
    return VectorHit(
        id=str(p.id),
        score=float(getattr(p, "score", 0.0) or 0.0),
        payload=p.payload or {},
        dense=vector,
    )


def _filter(tenant_id: str, document_id: str, version_id: str | None = None) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant_id)),
        models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id)),
    ]
    if version_id is not None:
        must.append(
            models.FieldCondition(key="version_id", match=models.MatchValue(value=version_id))
        )
    return models.Filter(must=must)
