"""Hybrid retrieval, stage by stage (:mod:`retrieval.stages`): dense + sparse (BM25-style)
candidates from the vector store, graph expansion from the entities of the question, every
candidate rescored by its best sentence, fusion with weights chosen by the query's language
(:mod:`retrieval.fusion`), only active versions, optional reranking (:mod:`retrieval.rerank`),
diversity.

Every store query carries the tenant filter; the catalog then keeps only chunks of each
document's active version (a version becomes visible in one transaction once every store
holds it), so readers never see half-indexed or superseded versions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.settings import FusionWeights, RetrievalSettings
from retrieval import stages
from retrieval.fusion import Hit, fuse, mmr, weights_for
from retrieval.rerank import Reranker
from retrieval.types import Passage
from stores.graph import GraphSearcher
from stores.vectors import SearchFilter, VectorHit, VectorSearcher
from textmodels.embedding import Embedder
from textmodels.entities import EntityExtractor
from textmodels.language import detect_language
from textmodels.sparse import SparseEncoder

T = TypeVar("T")


@dataclass(frozen=True)
class SearchResult:
    passages: list[Passage]
    timings_ms: dict[str, float]
    # Each stage's ranked list before fusion: answer traces keep the passages' stage scores.
    ranked: dict[str, list[VectorHit]] = field(default_factory=dict)


class Retriever:
    def __init__(
        self,
        *,
        versions: stages.ActiveVersions,
        vectors: VectorSearcher,
        graph: GraphSearcher,
        embedder: Embedder,
        sparse: SparseEncoder,
        extractor: EntityExtractor,
        config: RetrievalSettings | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.versions = versions
        self.vectors = vectors
        self.graph = graph
        self.embedder = embedder
        self.sparse = sparse
        self.extractor = extractor
        self.config = config or RetrievalSettings()
        self.reranker = reranker
        self._sentence_terms = stages.stored_sentence_terms(sparse)

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
        lap = Laps()
        q, ranked = self.ranked(query, flt, cfg, lap)
        fused = lap("fuse", self._fuse, ranked, q)
        if self.reranker is not None and fused:
            fused = lap("rerank", rerank, self.reranker, query, fused[: cfg.candidates])
        chosen = lap("mmr", mmr, fused, top_k or cfg.top_k, cfg.mmr_lambda)
        passages = [to_passage(i + 1, h) for i, h in enumerate(chosen)]
        return SearchResult(passages, lap.total(), ranked)

    def ranked(
        self,
        query: str,
        flt: SearchFilter,
        cfg: RetrievalSettings,
        lap: Laps | None = None,
        *,
        every_signal: bool = False,
    ) -> tuple[stages.Query, dict[str, list[VectorHit]]]:
        """The ranked list of each candidate and rescoring stage, before fusion. The
        rescoring stages run only when their weight is not 0, unless ``every_signal`` (fusion
        weights are tuned over every signal: bench/fusion.py)."""
        lap = lap or Laps()
        language = detect_language(query)
        weights = weights_for(cfg, language)
        if cfg.mode != "hybrid":  # one list, in its own order, whatever the fusion weights say
            weights = FusionWeights(
                dense=float(cfg.mode == "dense"),
                sparse=float(cfg.mode == "sparse"),
                graph=0.0,
                sentence=0.0,
                sentence_terms=0.0,
            )
        q = stages.Query(query, language, flt, cfg, weights)
        hybrid = cfg.mode == "hybrid"
        ranked: dict[str, list[VectorHit]] = {}
        if cfg.mode in ("hybrid", "dense"):
            lap("embed_query", stages.embed_query, self.embedder, q)
            ranked["dense"] = lap("dense", stages.dense, self.vectors, q)
        if cfg.mode in ("hybrid", "sparse"):
            ranked["sparse"] = lap("sparse", stages.sparse, self.vectors, self.sparse, q)
        if hybrid and cfg.graph_expansion:
            ranked["graph"] = lap(
                "graph", stages.graph, self.graph, self.vectors, self.extractor, q
            )
        pool = {h.id: h for results in ranked.values() for h in results}
        if hybrid and (every_signal or q.weights.sentence > 0):
            ranked["sentence"] = lap("sentence", stages.by_sentence, self.vectors, q, pool)
        if hybrid and (every_signal or q.weights.sentence_terms > 0):
            terms = set(self.sparse.term_ids(query, language))
            ranked["sentence_terms"] = lap(
                "sentence_terms", stages.by_sentence_terms, terms, pool, self._sentence_terms
            )
        return q, ranked

    def _fuse(self, ranked: dict[str, list[VectorHit]], q: stages.Query) -> list[Hit]:
        return stages.active_only(self.versions, q.flt.tenant_id, fuse(ranked, q.cfg, q.weights))


def rerank(reranker: Reranker, query: str, pool: list[Hit]) -> list[Hit]:
    """The pool ordered by the reranker's scores (which replace the fused ones)."""
    scores = reranker.score(query, [h.payload.get("text", "") for h in pool])
    for h, s in zip(pool, scores, strict=True):
        h.score = s
    return sorted(pool, key=lambda h: -h.score)


class Laps:
    """Runs each stage and records its time in milliseconds."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, stage: str, fn: Callable[..., T], *args: Any) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings[stage] = round((time.perf_counter() - start) * 1000, 2)

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": round(sum(self.timings.values()), 2)}


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
        suspicious=bool(p.get("suspicious", False)),
    )
