"""The optional reranking stage: a model scores (question, passage) pairs.

``GEDRAG_RETRIEVAL__RERANKER`` names a local sentence-transformers CrossEncoder; without it the
stage does not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Reranker(Protocol):
    """Scores (query, passage) pairs, one score per text in input order; higher is more
    relevant. Scores are comparable within one call only."""

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
        if not texts:
            return []
        return [float(s) for s in self.model.predict([(query, t) for t in texts])]
