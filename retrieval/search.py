"""Hybrid retrieval: dense + sparse (BM25-style) candidates from Qdrant, graph expansion from
the entities of the question, every candidate rescored by its best sentence, fusion with weights
chosen by the query's language, only active versions, optional reranking, diversity.

Every store query carries the tenant filter; the catalog then keeps only chunks of each
document's active version (a version becomes visible in one transaction once every store
holds it), so readers never see half-indexed or superseded versions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from core.settings import FusionWeights, RetrievalSettings
from retrieval.types import Passage
from stores.catalog import Catalog
from stores.graph import GraphSearcher
from stores.vectors import SearchFilter, VectorHit, VectorSearcher
from textmodels.embedding import Embedder
from textmodels.entities import EntityExtractor
from textmodels.language import detect_language
from textmodels.sparse import SparseEncoder


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant. ``None`` in settings = no stage."""

    @property
    def name(self) -> str: ...

    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """sentence-transformers ``CrossEncoder`` loaded from a local path."""

    def __init__(self, model_path: str, *, device: str = "cpu") -> None:
        from sentence_transformers import CrossEncoder

        self.path = model_path
        self.model = CrossEncoder(model_path, device=device)

    @property
    def name(self) -> str:
        return f"cross-encoder:{self.path}"

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return [float(s) for s in self.model.predict([(query, t) for t in texts])]


@dataclass
class Hit:
    """A candidate chunk during fusion."""

    id: str
    payload: dict[str, Any]
    dense: list[float] | None
    score: float = 0.0
    sources: dict[str, float] = field(default_factory=dict)  # retriever -> its own score


@dataclass(frozen=True)
class SearchResult:
    passages: list[Passage]
    timings_ms: dict[str, float]


class Retriever:
    def __init__(
        self,
        *,
        catalog: Catalog,
        vectors: VectorSearcher,
        graph: GraphSearcher,
        embedder: Embedder,
        sparse: SparseEncoder,
        extractor: EntityExtractor,
        config: RetrievalSettings | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.catalog = catalog
        self.vectors = vectors
        self.graph = graph
        self.embedder = embedder
        self.sparse = sparse
        self.extractor = extractor
        self.config = config or RetrievalSettings()
        self.reranker = reranker

    def to_dict(self) -> dict[str, Any]:
        return self.config.model_dump()

    def search(
        self,
        query: str,
        flt: SearchFilter,
        *,
        top_k: int | None = None,
        config: RetrievalSettings | None = None,
    ) -> SearchResult:
        cfg = config or self.config
        k = top_k or cfg.top_k
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 2)
            clock = now

        language = detect_language(query)
        weights = cfg.weights(language)
        ranked: dict[str, list[VectorHit]] = {}
        vector: list[float] | None = None
        if cfg.mode in ("hybrid", "dense"):
            vector = self.embedder.embed([query])[0]
            lap("embed_query")
            ranked["dense"] = self.vectors.search_dense(vector, flt, cfg.candidates)
            lap("dense")
        if cfg.mode in ("hybrid", "sparse"):
            sv = self.sparse.encode_query(query, language)
            ranked["sparse"] = self.vectors.search_sparse(
                sv.indices, sv.values, flt, cfg.candidates
            )
            lap("sparse")
        if cfg.graph_expansion and cfg.mode == "hybrid":
            keys = [e.key for e in self.extractor.extract(query, language)]
            reached = self.graph.expand(flt.tenant_id, keys, cfg.candidates) if keys else {}
            hits = {h.id: h for h in self.vectors.fetch(list(reached), flt)}
            ranked["graph"] = [
                VectorHit(id=h.id, score=reached[h.id], payload=h.payload, dense=h.dense)
                for h in sorted(hits.values(), key=lambda h: -reached[h.id])
            ]
            lap("graph")
        candidates = {h.id: h for results in ranked.values() for h in results}
        if vector is not None and cfg.mode == "hybrid" and weights.sentence > 0:
            ranked["sentence"] = self._by_sentence(vector, candidates, flt)
            lap("sentence")
        if cfg.mode == "hybrid" and weights.sentence_terms > 0:
            terms = set(self.sparse.term_ids(query, language))
            ranked["sentence_terms"] = by_sentence_terms(terms, candidates, self._sentence_terms)
            lap("sentence_terms")
        fused = fuse(ranked, cfg, weights)
        fused = self._active_only(flt.tenant_id, fused)
        lap("fuse")
        if self.reranker is not None and fused:
            pool = fused[: cfg.candidates]
            scores = self.reranker.score(query, [h.payload.get("text", "") for h in pool])
            for h, s in zip(pool, scores, strict=True):
                h.score = s
            fused = sorted(pool, key=lambda h: -h.score)
            lap("rerank")
        chosen = mmr(fused, k, cfg.mmr_lambda)
        lap("mmr")
        passages = [to_passage(i + 1, h) for i, h in enumerate(chosen)]
        timings["total"] = round(sum(timings.values()), 2)
        return SearchResult(passages=passages, timings_ms=timings)

    def _by_sentence(
        self, vector: list[float], hits: dict[str, VectorHit], flt: SearchFilter
    ) -> list[VectorHit]:
        """The candidates, ranked by their best sentence's similarity to the query. A chunk
        stored without sentence vectors (by an earlier gedrag, until a re-embedding) counts as
        one sentence: its own vector."""
        scores = self.vectors.score_sentences(vector, list(hits), flt)
        q = np.asarray(vector, dtype=np.float32)
        q /= float(np.linalg.norm(q)) or 1.0
        for i, h in hits.items():
            if i not in scores and h.dense is not None:
                d = np.asarray(h.dense, dtype=np.float32)
                scores[i] = float(q @ d) / (float(np.linalg.norm(d)) or 1.0)
        return rescored(hits, scores)

    def _sentence_terms(self, hit: VectorHit) -> list[list[int]]:
        """Stored at ingestion; worked out from the text for chunks stored before that."""
        stored: list[list[int]] | None = hit.payload.get("sentence_terms")
        if stored is not None:
            return stored
        text = str(hit.payload.get("text", ""))
        return self.sparse.sentence_terms(text, str(hit.payload.get("language", "")))

    def _active_only(self, tenant_id: str, hits: list[Hit]) -> list[Hit]:
        """Drop chunks of versions that are not (or no longer) the active one."""
        if not hits:
            return hits
        active = self.catalog.versions.active(
            tenant_id, sorted({str(h.payload.get("document_id")) for h in hits})
        )
        return [
            h
            for h in hits
            if active.get(str(h.payload.get("document_id"))) == h.payload.get("version_id")
        ]


def by_sentence_terms(
    terms: set[int],
    hits: dict[str, VectorHit],
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


def rescored(hits: dict[str, VectorHit], scores: dict[str, float]) -> list[VectorHit]:
    """The scored hits with their new scores, best first (ties by id)."""
    order = sorted(scores, key=lambda i: (-scores[i], i))
    return [replace(hits[i], score=scores[i]) for i in order]


def fuse(
    ranked: dict[str, list[VectorHit]],
    cfg: RetrievalSettings,
    weights: FusionWeights | None = None,
) -> list[Hit]:
    """Combine ranked lists: weighted reciprocal-rank fusion, or weighted min-max scores.
    ``weights``: the query language's (default: the settings' own ``*_weight``)."""
    by_source = (weights or cfg.weights("")).model_dump()
    hits: dict[str, Hit] = {}
    for source, results in ranked.items():
        if not results:
            continue
        w = by_source[source]
        top, bottom = results[0].score, results[-1].score
        for rank, r in enumerate(results):
            h = hits.setdefault(r.id, Hit(id=r.id, payload=r.payload, dense=r.dense))
            if h.dense is None:
                h.dense = r.dense
            h.sources[source] = r.score
            if cfg.fusion == "rrf":
                h.score += w / (cfg.rrf_k + rank + 1)
            else:
                span = top - bottom
                h.score += w * ((r.score - bottom) / span if span > 0 else 1.0)
    return sorted(hits.values(), key=lambda h: (-h.score, h.id))


def mmr(hits: list[Hit], k: int, lam: float) -> list[Hit]:
    """Maximal marginal relevance: each pick trades relevance against similarity to the picks
    already made, so near-duplicate chunks do not fill the context."""
    pool = hits[: max(k * 4, 20)]
    if lam >= 1.0 or len(pool) <= 1 or any(h.dense is None for h in pool):
        return hits[:k]
    vectors = np.array([h.dense for h in pool], dtype=np.float32)
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    similarity = vectors @ vectors.T
    relevance = np.array([h.score for h in pool], dtype=np.float32)
    relevance /= relevance[0] if relevance[0] else 1.0
    chosen: list[int] = []
    closest = np.zeros(len(pool), dtype=np.float32)  # max similarity to the picks so far
    available = np.ones(len(pool), dtype=bool)
    while len(chosen) < min(k, len(pool)):
        value = lam * relevance - (1 - lam) * closest
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        closest = np.maximum(closest, similarity[best])
    return [pool[i] for i in chosen]


def to_passage(n: int, h: Hit) -> Passage:
    p = h.payload
    return Passage(
        n=n,
        chunk_id=h.id,
        document_id=str(p.get("document_id", "")),
        version=int(p.get("version", 0)),
        title=str(p.get("title", "")),
        text=str(p.get("text", "")),
        score=round(h.score, 6),
        page_start=p.get("page_start"),
        page_end=p.get("page_end"),
        section_path=tuple(p.get("section_path") or ()),
        collection=str(p.get("collection", "")),
        language=str(p.get("language", "")),
    )
