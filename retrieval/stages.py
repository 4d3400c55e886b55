"""Retrieval's stages, each small and testable with fakes.

A :class:`Query` carries the question, its language, the filter, the settings and the fusion
weights of that language; the question's vector is filled by the dense stage and reused by the
sentence stage. Candidate stages return ranked lists from one store each; rescoring stages rank
the union of those candidates by their best sentence. Every store read carries the tenant filter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.settings import FusionWeights, RetrievalSettings
from retrieval.fusion import Hit, rescored
from stores.graph import GraphSearcher
from stores.vectors import SearchFilter, VectorHit, VectorSearcher
from textmodels.embedding import Embedder
from textmodels.entities import EntityExtractor
from textmodels.sparse import SparseEncoder

Pool = dict[str, VectorHit]  # the candidates of every candidate stage, by id


@dataclass
class Query:
    text: str
    language: str
    flt: SearchFilter
    cfg: RetrievalSettings
    weights: FusionWeights
    vector: list[float] | None = None  # the question's dense vector, once embedded


class ActiveVersions(Protocol):
    """``document_id → version_id`` of each live document's active version (the catalog)."""

    def active(self, tenant_id: str, document_ids: list[str]) -> dict[str, str]: ...


def embed_query(embedder: Embedder, q: Query) -> list[float]:
    q.vector = embedder.embed_queries([q.text])[0]
    return q.vector


def dense(vectors: VectorSearcher, q: Query) -> list[VectorHit]:
    """Nearest chunks to the question's vector."""
    assert q.vector is not None, "embed_query runs first"
    return vectors.search_dense(q.vector, q.flt, q.cfg.candidates)


def sparse(vectors: VectorSearcher, encoder: SparseEncoder, q: Query) -> list[VectorHit]:
    """Best BM25-style matches of the question's stemmed terms."""
    sv = encoder.encode_query(q.text, q.language)
    return vectors.search_sparse(sv.indices, sv.values, q.flt, q.cfg.candidates)


def graph(
    graph: GraphSearcher, vectors: VectorSearcher, extractor: EntityExtractor, q: Query
) -> list[VectorHit]:
    """Chunks mentioning the question's entities or entities related to them, ranked by the
    graph's score; fetched from the vector store, so the filter applies to them too."""
    keys = [e.key for e in extractor.extract(q.text, q.language)]
    reached = graph.expand(q.flt.tenant_id, keys, q.cfg.candidates) if keys else {}
    hits = {h.id: h for h in vectors.fetch(list(reached), q.flt)}
    ordered = sorted(hits.values(), key=lambda h: -reached[h.id])
    return [
        VectorHit(id=h.id, score=reached[h.id], payload=h.payload, dense=h.dense) for h in ordered
    ]


def by_sentence(vectors: VectorSearcher, q: Query, pool: Pool) -> list[VectorHit]:
    """The candidates, ranked by their best sentence's similarity to the question. A chunk
    stored without sentence vectors (by an earlier gedrag, until a re-embedding) counts as one
    sentence: its own vector."""
    assert q.vector is not None, "embed_query runs first"
    scores = vectors.score_sentences(q.vector, list(pool), q.flt)
    v = np.asarray(q.vector, dtype=np.float32)
    v /= float(np.linalg.norm(v)) or 1.0
    for i, h in pool.items():
        if i not in scores and h.dense is not None:
            d = np.asarray(h.dense, dtype=np.float32)
            scores[i] = float(v @ d) / (float(np.linalg.norm(d)) or 1.0)
    return rescored(pool, scores)


def by_sentence_terms(
    terms: set[int],
    hits: Pool,
    sentence_terms: Callable[[VectorHit], list[list[int]]],
) -> list[VectorHit]:
    """The candidates, ranked by their sentence holding the most of the question's terms, each
    term weighted by its IDF among the candidates (the same on every vector store)."""
    sentences = {i: [terms.intersection(s) for s in sentence_terms(h)] for i, h in hits.items()}
    n = len(sentences)
    df = {t: sum(1 for own in sentences.values() if any(t in s for s in own)) for t in terms}
    idf = {t: math.log((n - d + 0.5) / (d + 0.5) + 1) for t, d in df.items()}
    scores = {
        i: max((sum(idf[t] for t in s) for s in own), default=0.0) for i, own in sentences.items()
    }
    return rescored(hits, scores)


def stored_sentence_terms(encoder: SparseEncoder) -> Callable[[VectorHit], list[list[int]]]:
    """A chunk's sentences' term ids: stored at ingestion, worked out from the text for chunks
    stored before that."""

    def terms(hit: VectorHit) -> list[list[int]]:
        stored: list[list[int]] | None = hit.payload.get("sentence_terms")
        if stored is not None:
            return stored
        text = str(hit.payload.get("text", ""))
        return encoder.sentence_terms(text, str(hit.payload.get("language", "")))

    return terms


def active_only(versions: ActiveVersions, tenant_id: str, hits: list[Hit]) -> list[Hit]:
    """Drop chunks of versions that are not (or no longer) the active one."""
    if not hits:
        return hits
    docs = sorted({str(h.payload.get("document_id")) for h in hits})
    active = versions.active(tenant_id, docs)
    return [
        h
        for h in hits
        if active.get(str(h.payload.get("document_id"))) == h.payload.get("version_id")
    ]
