"""Reranker conformance: the behaviour every ``retrieval.rerank.Reranker`` owes the rerank stage.

A mixin in the manner of haystack's ``haystack/testing/document_store.py``: a subclass named
``Test...`` provides the ``reranker`` fixture (its model loaded once per session by the
subclass); every test here then runs against it. Scores are only compared within one call, so
the suite asks for one finite score per text, in input order, whatever else is in the call.
``tests/unit/test_reranker_conformance.py`` runs it on ``CrossEncoderReranker`` with the tiny
random cross-encoder of ``tests/support/tiny_cross_encoder.py``.
"""

from __future__ import annotations

import math

import pytest

from retrieval.rerank import Reranker

QUERY = "When does the maintenance contract with ACME end?"
TEXTS = [
    "The maintenance contract with ACME Industries ends on March 3, 2026.",
    "Invoice INV-7 amounts to 120 EUR.",
    "Les congés payés sont de cinq semaines par an.",
    "Penguins huddle together through the long Antarctic winter, " * 20,  # past 128 tokens
    "",
]


def tolerance(scores: list[float]) -> float:
    """How far one text's score may move with the rest of the call: 1 % of the call's spread.
    Batches pad texts to a common length; the padded positions are masked, so a score moves by
    float rounding only (the tiny random model's scores all lie within 5e-5 of 0.5 and came out
    identical alone and in a batch)."""
    return max(max(scores) - min(scores), 1e-9) / 100


class RerankerConformance:
    """Subclasses provide ``reranker``."""

    @pytest.fixture
    def reranker(self) -> Reranker:
        raise NotImplementedError("a subclass provides the reranker under test")

    def test_name(self, reranker: Reranker) -> None:
        assert isinstance(reranker.name, str) and reranker.name
        assert reranker.name == reranker.name

    def test_one_finite_score_per_text(self, reranker: Reranker) -> None:
        scores = reranker.score(QUERY, TEXTS)
        assert len(scores) == len(TEXTS)
        assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
        assert len(set(scores)) > 1  # a constant would pass the lines above

    def test_scores_follow_the_input_order(self, reranker: Reranker) -> None:
        scores = reranker.score(QUERY, TEXTS)
        tol = tolerance(scores)
        alone = [reranker.score(QUERY, [t])[0] for t in TEXTS]
        backwards = reranker.score(QUERY, TEXTS[::-1])[::-1]
        assert scores == pytest.approx(alone, abs=tol)
        assert backwards == pytest.approx(alone, abs=tol)

    def test_empty_input_gives_no_score(self, reranker: Reranker) -> None:
        assert reranker.score(QUERY, []) == []

    def test_scoring_is_deterministic(self, reranker: Reranker) -> None:
        scores = reranker.score(QUERY, TEXTS)
        assert reranker.score(QUERY, TEXTS) == pytest.approx(scores, abs=tolerance(scores))

    def test_the_query_is_read(self, reranker: Reranker) -> None:
        one = reranker.score(QUERY, TEXTS)
        other = reranker.score("Combien de semaines de congés ?", TEXTS)
        assert one != pytest.approx(other, abs=tolerance(one))

    def test_the_same_text_twice_scores_the_same(self, reranker: Reranker) -> None:
        a, other, b = reranker.score(QUERY, [TEXTS[0], TEXTS[3], TEXTS[0]])
        assert a == pytest.approx(b, abs=tolerance([a, other]))
