"""Combining the retrievers' ranked lists, and keeping the context diverse.

Each candidate stage (dense, sparse, graph) and each rescoring stage (best sentence vector, best
sentence by terms) yields a ranked list; :func:`fuse` sums them with the query language's
weights (min-max-normalised scores, or reciprocal ranks). A candidate absent from a list gets
nothing from it. :func:`mmr` then trades relevance for diversity so near-duplicate chunks do not
fill the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.settings import FusionWeights, RetrievalSettings
from stores.vectors import VectorHit


@dataclass
class Hit:
    """A candidate chunk during fusion."""

    id: str
    payload: dict[str, Any]
    dense: list[float] | None
    score: float = 0.0
    sources: dict[str, float] = field(default_factory=dict)  # retriever -> its own score


def weights_for(cfg: RetrievalSettings, language: str) -> FusionWeights:
    """The fusion weights for a query in ``language``: the language's own when the settings
    name it, else the ``*_weight`` fields."""
    return cfg.language_weights.get(language) or FusionWeights(
        dense=cfg.dense_weight,
        sparse=cfg.sparse_weight,
        graph=cfg.graph_weight,
        sentence=cfg.sentence_weight,
        sentence_terms=cfg.sentence_terms_weight,
    )


def rescored(hits: dict[str, VectorHit], scores: dict[str, float]) -> list[VectorHit]:
    """The scored hits with their new scores, best first (ties by id)."""
    order = sorted(scores, key=lambda i: (-scores[i], i))
    return [replace(hits[i], score=scores[i]) for i in order]


# The signals a chunk stored before its embedding (searchable by its terms, its dense and
# sentence vectors still to come: payload ``dense_pending``) cannot have.
DENSE_SIGNALS = frozenset({"dense", "sentence"})


def fuse(
    ranked: dict[str, list[VectorHit]],
    cfg: RetrievalSettings,
    weights: FusionWeights | None = None,
) -> list[Hit]:
    """Combine ranked lists: weighted reciprocal-rank fusion, or weighted min-max scores.
    ``weights``: the query language's (default: the settings' own ``*_weight``). A chunk whose
    dense vectors are still to come is scored on the signals it can have, scaled to the same
    total weight: a missing dense score counts as missing, not as zero."""
    by_source = (weights or weights_for(cfg, "")).model_dump()
    total = sum(by_source[s] for s in ranked if ranked[s])
    partial = total - sum(by_source[s] for s in DENSE_SIGNALS if ranked.get(s))
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
    if 0 < partial < total:
        for h in hits.values():
            if h.payload.get("dense_pending"):
                h.score *= total / partial
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
