"""Retrieval's stages one by one, over small fakes of the store Protocols (the real stores run
the same Protocols' conformance suites in the integration tier)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from core.settings import FusionWeights, RetrievalSettings
from retrieval import stages
from retrieval.fusion import Hit
from retrieval.search import Laps, Retriever, rerank
from stores.vectors import SearchFilter, VectorHit
from textmodels.entities import RuleBasedEntityExtractor
from textmodels.sparse import SparseEncoder

pytestmark = pytest.mark.unit

FLT = SearchFilter(tenant_id="t1")


def hit(
    i: str, dense: list[float], doc: str = "d1", version: str = "v1", **payload: Any
) -> VectorHit:
    body = {"tenant_id": "t1", "document_id": doc, "version_id": version, "text": i, **payload}
    return VectorHit(id=i, score=0.0, payload=body, dense=dense)


class FakeVectors:
    """A VectorSearcher over a few points: what each call received is recorded."""

    def __init__(self, points: Sequence[VectorHit], sentences: dict[str, float] | None = None):
        self.points = {p.id: p for p in points}
        self.sentences = sentences or {}
        self.calls: list[tuple[str, Any]] = []

    def search_dense(
        self, vector: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        self.calls.append(("dense", (list(vector), flt, limit)))
        scored = [
            VectorHit(
                p.id,
                sum(a * b for a, b in zip(vector, p.dense or [], strict=True)),
                p.payload,
                p.dense,
            )
            for p in self.points.values()
        ]
        return sorted(scored, key=lambda h: -h.score)[:limit]

    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        self.calls.append(("sparse", (list(indices), flt, limit)))
        return [
            VectorHit(p.id, 1.0 / (n + 1), p.payload, p.dense)
            for n, p in enumerate(self.points.values())
        ][:limit]

    def fetch(self, point_ids: Sequence[str], flt: SearchFilter) -> list[VectorHit]:
        self.calls.append(("fetch", (list(point_ids), flt)))
        return [self.points[i] for i in point_ids if i in self.points]

    def score_sentences(
        self, vector: Sequence[float], point_ids: Sequence[str], flt: SearchFilter
    ) -> dict[str, float]:
        return {i: s for i, s in self.sentences.items() if i in point_ids}


class FakeGraph:
    def __init__(self, reached: dict[str, float]) -> None:
        self.reached = reached
        self.asked: list[tuple[str, list[str], int]] = []

    def expand(self, tenant_id: str, keys: Sequence[str], limit: int) -> dict[str, float]:
        self.asked.append((tenant_id, list(keys), limit))
        return self.reached


class FakeVersions:
    def __init__(self, active: dict[str, str]) -> None:
        self.active_map = active

    def active(self, tenant_id: str, document_ids: list[str]) -> dict[str, str]:
        return {d: v for d, v in self.active_map.items() if d in document_ids}


class FakeEmbedder:
    model_id = "fake"
    dim = 2

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed(texts)

    def embed_spans(self, texts: Sequence[str], spans: Any) -> list[Any]:
        return [([1.0, 0.0], []) for _ in texts]


def query(text: str = "ACME contract", **cfg: Any) -> stages.Query:
    settings = RetrievalSettings(**cfg)
    w = FusionWeights(dense=0.2, sparse=0.8, graph=0.1, sentence=0.5, sentence_terms=0.2)
    return stages.Query(text, "en", FLT, settings, w)


def test_dense_needs_the_question_vector_and_passes_filter_and_limit() -> None:
    vectors = FakeVectors([hit("a", [1, 0]), hit("b", [0, 1])])
    q = query(candidates=7)
    with pytest.raises(AssertionError):
        stages.dense(vectors, q)
    stages.embed_query(FakeEmbedder(), q)
    assert [h.id for h in stages.dense(vectors, q)] == ["a", "b"]
    assert vectors.calls[-1] == ("dense", ([1.0, 0.0], FLT, 7))


def test_sparse_sends_the_questions_stemmed_terms() -> None:
    vectors = FakeVectors([hit("a", [1, 0])])
    encoder = SparseEncoder()
    q = query("self-locking nuts", candidates=5)
    stages.sparse(vectors, encoder, q)
    kind, (indices, flt, limit) = vectors.calls[-1]
    assert kind == "sparse" and flt == FLT and limit == 5
    assert indices == encoder.encode_query("self-locking nuts", "en").indices


def test_graph_ranks_by_the_graphs_score_and_keeps_only_what_the_store_returns() -> None:
    vectors = FakeVectors([hit("a", [1, 0]), hit("b", [0, 1])])
    graph = FakeGraph({"a": 1.0, "b": 2.5, "gone": 9.0})  # "gone" fails the filter / is absent
    q = query("Contract with ACME Industries in Lyon")
    found = stages.graph(graph, vectors, RuleBasedEntityExtractor(), q)
    assert [(h.id, h.score) for h in found] == [("b", 2.5), ("a", 1.0)]
    assert graph.asked and graph.asked[0][0] == "t1" and graph.asked[0][1]


def test_graph_without_entities_asks_nothing() -> None:
    graph = FakeGraph({"a": 1.0})
    assert stages.graph(graph, FakeVectors([]), RuleBasedEntityExtractor(), query("hello")) == []
    assert graph.asked == []


def test_sentence_stage_falls_back_to_the_chunk_vector_without_sentence_vectors() -> None:
    pool = {"a": hit("a", [0.0, 1.0]), "b": hit("b", [1.0, 0.0])}
    vectors = FakeVectors(list(pool.values()), sentences={"a": 0.9})
    q = query()
    stages.embed_query(FakeEmbedder(), q)
    ranked = stages.by_sentence(vectors, q, pool)
    assert [(h.id, round(h.score, 3)) for h in ranked] == [("b", 1.0), ("a", 0.9)]


def test_stored_sentence_terms_are_used_else_worked_out_from_the_text() -> None:
    encoder = SparseEncoder()
    terms = stages.stored_sentence_terms(encoder)
    assert terms(hit("a", [1, 0], sentence_terms=[[1, 2]])) == [[1, 2]]
    worked = terms(hit("The nut locks. It holds.", [1, 0], language="en"))
    assert worked == encoder.sentence_terms("The nut locks. It holds.", "en")


def test_active_only_drops_superseded_and_deleted_versions() -> None:
    hits = [
        Hit("a", {"document_id": "d1", "version_id": "v2"}, None),
        Hit("b", {"document_id": "d1", "version_id": "v1"}, None),
        Hit("c", {"document_id": "d2", "version_id": "v1"}, None),
    ]
    kept = stages.active_only(FakeVersions({"d1": "v2"}), "t1", hits)
    assert [h.id for h in kept] == ["a"]
    assert stages.active_only(FakeVersions({}), "t1", []) == []


def test_rerank_orders_the_pool_by_the_rerankers_scores() -> None:
    class Reverse:
        name = "reverse"

        def score(self, query: str, texts: Sequence[str]) -> list[float]:
            return [float(i) for i in range(len(texts))]

    pool = [Hit("a", {"text": "x"}, None, 3.0), Hit("b", {"text": "y"}, None, 2.0)]
    assert [h.id for h in rerank(Reverse(), "q", pool)] == ["b", "a"]


def test_laps_time_every_stage_and_sum_them() -> None:
    lap = Laps()
    assert lap("one", lambda x: x + 1, 1) == 2
    with pytest.raises(ZeroDivisionError):
        lap("two", lambda: 1 / 0)
    timings = lap.total()
    assert set(timings) == {"one", "two", "total"}
    assert timings["total"] == round(timings["one"] + timings["two"], 2)


def test_the_retriever_runs_the_stages_and_returns_only_active_passages() -> None:
    points = [hit("a", [1, 0]), hit("b", [0.6, 0.8], doc="d2", version="old")]
    retriever = Retriever(
        versions=FakeVersions({"d1": "v1", "d2": "new"}),
        vectors=FakeVectors(points, sentences={"a": 0.5, "b": 0.9}),
        graph=FakeGraph({}),
        embedder=FakeEmbedder(),
        sparse=SparseEncoder(),
        extractor=RuleBasedEntityExtractor(),
    )
    result = retriever.search("who inspects ladders", FLT, top_k=5)
    assert [p.chunk_id for p in result.passages] == ["a"]  # b's version is not the active one
    assert {"embed_query", "dense", "sparse", "graph", "fuse", "mmr", "total"} <= set(
        result.timings_ms
    )
    dense_only = retriever.search("x", FLT, config=RetrievalSettings(mode="dense"))
    assert "sparse" not in dense_only.timings_ms and "graph" not in dense_only.timings_ms


def test_a_single_list_mode_keeps_its_order_whatever_the_fusion_weights() -> None:
    # English questions weigh the sparse list 0 in hybrid fusion (e5's weights); asked for the
    # sparse list alone, its order must still come back, not a tie of zeros.
    points = [hit("a", [0, 1]), hit("b", [1, 0]), hit("c", [0.6, 0.8])]
    retriever = Retriever(
        versions=FakeVersions({"d1": "v1"}),
        vectors=FakeVectors(points),
        graph=FakeGraph({}),
        embedder=FakeEmbedder(),
        sparse=SparseEncoder(),
        extractor=RuleBasedEntityExtractor(),
    )
    zero = FusionWeights(dense=1, sparse=0, graph=0, sentence=0, sentence_terms=0)
    cfg = RetrievalSettings(
        mode="sparse", sparse_weight=0, mmr_lambda=1, language_weights={"en": zero}
    )
    found = retriever.search("who inspects the ladders", FLT, config=cfg, top_k=3)
    assert [p.chunk_id for p in found.passages] == ["a", "b", "c"]
    assert [p.score for p in found.passages] == sorted(
        (p.score for p in found.passages), reverse=True
    )
    assert found.passages[0].score > found.passages[-1].score
