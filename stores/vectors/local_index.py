"""In-memory search over the points of a local (embedded) Qdrant collection.

Qdrant's local mode is the reference implementation of its API but evaluates every payload
filter in Python, point by point: with a few thousand chunks a filtered search costs ~80 ms per
call, and every gedrag search carries the tenant filter. Local mode allows one process per
folder, so that process sees every write and can keep this mirror exact: numpy arrays for the
dense vectors and the filterable fields, an inverted index for the sparse vectors, each chunk's
sentence vectors, scored as Qdrant scores them (cosine; sparse dot product with IDF
``ln((N - df + 0.5) / (df + 0.5) + 1)`` over the collection; MaxSim over the sentences).
Qdrant stays the store of record; the mirror is rebuilt from it on start. A Qdrant server needs
none of this: it has payload indexes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from stores.vectors import SearchFilter, VectorHit, VectorPoint

_GROW = 1024


class LocalIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.RLock()
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []
        self._payloads: list[dict[str, Any]] = []
        self._dense = np.zeros((0, dim), dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._tenant = np.zeros(0, dtype=object)
        self._collection = np.zeros(0, dtype=object)
        self._document = np.zeros(0, dtype=object)
        self._uploaded = np.zeros(0, dtype=np.float64)
        self._sparse: list[dict[int, float]] = []
        self._sentences: list[np.ndarray | None] = []  # per row, unit rows; None when absent
        self._postings: dict[int, dict[int, float]] = {}

    def __len__(self) -> int:
        return int(self._alive.sum())

    # -- writes (called by the store after Qdrant accepted them) ---------------------------

    def upsert(self, points: Iterable[VectorPoint]) -> None:
        with self._lock:
            for p in points:
                row = self._rows.get(p.id)
                if row is None:
                    row = self._append(p.id)
                else:
                    self._unpost(row)
                vector = np.asarray(p.dense, dtype=np.float32)
                norm = float(np.linalg.norm(vector))
                self._dense[row] = vector / norm if norm else vector
                self._sentences[row] = _unit_rows(p.sentences) if p.sentences else None
                self._set_payload(row, p.payload)
                self._alive[row] = True
                terms = dict(zip(p.sparse_indices, p.sparse_values, strict=True))
                self._sparse[row] = terms
                for term, weight in terms.items():
                    self._postings.setdefault(term, {})[row] = weight

    def delete(self, ids: Iterable[str]) -> None:
        with self._lock:
            for point_id in ids:
                row = self._rows.pop(point_id, None)
                if row is not None:
                    self._unpost(row)
                    self._alive[row] = False
                    self._sentences[row] = None

    def matching(self, tenant_id: str, document_id: str, version_id: str | None) -> list[str]:
        with self._lock:
            rows = np.flatnonzero(
                self._alive & (self._tenant == tenant_id) & (self._document == document_id)
            )
            return [
                self._ids[r]
                for r in rows
                if version_id is None or self._payloads[r].get("version_id") == version_id
            ]

    def set_payload(self, point_ids: Iterable[str], payload: dict[str, Any]) -> None:
        with self._lock:
            for point_id in point_ids:
                row = self._rows.get(point_id)
                if row is not None:
                    self._set_payload(row, {**self._payloads[row], **payload})

    # -- reads ------------------------------------------------------------------------------

    def search_dense(
        self, vector: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        with self._lock:
            rows = self._filtered(flt)
            if rows.size == 0:
                return []
            scores = self._dense[rows] @ _unit(vector)
            return self._top(rows, scores, limit)

    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        with self._lock:
            n = len(self)
            acc: dict[int, float] = {}
            for term, qw in zip(indices, values, strict=True):
                postings = self._postings.get(term)
                if not postings:
                    continue
                df = len(postings)
                weight = qw * math.log((n - df + 0.5) / (df + 0.5) + 1)
                for row, dw in postings.items():
                    acc[row] = acc.get(row, 0.0) + weight * dw
            if not acc:
                return []
            candidates = np.fromiter(acc, dtype=np.int64, count=len(acc))
            allowed = self._mask(flt, candidates)
            rows = candidates[allowed]
            scores = np.array([acc[int(r)] for r in rows], dtype=np.float64)
            return self._top(rows, scores, limit)

    def score_sentences(
        self, vector: Sequence[float], ids: Sequence[str], flt: SearchFilter
    ) -> dict[str, float]:
        with self._lock:
            q = _unit(vector)
            out: dict[str, float] = {}
            for row in self._named(ids, flt):
                sentences = self._sentences[int(row)]
                if sentences is not None:
                    out[self._ids[int(row)]] = float((sentences @ q).max())
            return out

    def fetch(self, ids: Sequence[str], flt: SearchFilter) -> list[VectorHit]:
        with self._lock:
            return [self._hit(int(r), 0.0) for r in self._named(ids, flt)]

    # -- helpers ----------------------------------------------------------------------------

    def _append(self, point_id: str) -> int:
        row = len(self._ids)
        if row >= len(self._alive):
            grow = max(_GROW, len(self._alive))
            self._dense = np.vstack([self._dense, np.zeros((grow, self.dim), dtype=np.float32)])
            self._alive = np.concatenate([self._alive, np.zeros(grow, dtype=bool)])
            for name in ("_tenant", "_collection", "_document"):
                setattr(
                    self, name, np.concatenate([getattr(self, name), np.zeros(grow, dtype=object)])
                )
            self._uploaded = np.concatenate([self._uploaded, np.full(grow, np.nan)])
        self._rows[point_id] = row
        self._ids.append(point_id)
        self._payloads.append({})
        self._sparse.append({})
        self._sentences.append(None)
        return row

    def _set_payload(self, row: int, payload: dict[str, Any]) -> None:
        self._payloads[row] = payload
        self._tenant[row] = payload.get("tenant_id")
        self._collection[row] = payload.get("collection")
        self._document[row] = payload.get("document_id")
        uploaded = payload.get("uploaded_at")
        self._uploaded[row] = np.nan if uploaded is None else float(uploaded)

    def _unpost(self, row: int) -> None:
        for term in self._sparse[row]:
            postings = self._postings.get(term)
            if postings is not None:
                postings.pop(row, None)
                if not postings:
                    del self._postings[term]
        self._sparse[row] = {}

    def _filtered(self, flt: SearchFilter) -> np.ndarray:
        rows = np.flatnonzero(self._alive & (self._tenant == flt.tenant_id))
        selected: np.ndarray = rows[self._mask(flt, rows)]
        return selected

    def _named(self, ids: Sequence[str], flt: SearchFilter) -> np.ndarray:
        """The rows of these ids that exist and pass the filter."""
        rows = np.array([self._rows[i] for i in ids if i in self._rows], dtype=np.int64)
        if rows.size == 0:
            return rows
        named: np.ndarray = rows[self._mask(flt, rows)]
        return named

    def _mask(self, flt: SearchFilter, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` pass the filter (same semantics as SearchFilter.to_qdrant)."""
        mask: np.ndarray = self._alive[rows] & (self._tenant[rows] == flt.tenant_id)
        if flt.collections:
            mask &= np.isin(self._collection[rows], list(flt.collections))
        if flt.document_ids:
            mask &= np.isin(self._document[rows], list(flt.document_ids))
        if flt.uploaded_after is not None:
            mask &= self._uploaded[rows] >= flt.uploaded_after
        if flt.uploaded_before is not None:
            mask &= self._uploaded[rows] <= flt.uploaded_before
        if flt.tags or flt.metadata:
            wanted_tags = set(flt.tags or ())
            for i in np.flatnonzero(mask):
                payload = self._payloads[int(rows[i])]
                if wanted_tags and not wanted_tags & set(payload.get("tags") or ()):
                    mask[i] = False
                    continue
                meta = payload.get("metadata") or {}
                if any(k not in meta or meta[k] != v for k, v in (flt.metadata or {}).items()):
                    mask[i] = False
        return mask

    def _top(self, rows: np.ndarray, scores: np.ndarray, limit: int) -> list[VectorHit]:
        if rows.size > limit:
            part = np.argpartition(-scores, limit - 1)[:limit]
            rows, scores = rows[part], scores[part]
        order = np.lexsort((np.array([self._ids[int(r)] for r in rows]), -scores))
        return [self._hit(int(rows[i]), float(scores[i])) for i in order]

    def _hit(self, row: int, score: float) -> VectorHit:
        from stores.vectors import VectorHit

        return VectorHit(
            id=self._ids[row],
            score=score,
            payload=self._payloads[row],
            dense=self._dense[row].tolist(),
        )


def _unit(vector: Sequence[float]) -> np.ndarray:
    q = np.asarray(vector, dtype=np.float32)
    unit: np.ndarray = q / (float(np.linalg.norm(q)) or 1.0)
    return unit


def _unit_rows(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    m = np.asarray(vectors, dtype=np.float32)
    norms: np.ndarray = np.linalg.norm(m, axis=1, keepdims=True)
    unit: np.ndarray = m / np.clip(norms, 1e-12, None)
    return unit
