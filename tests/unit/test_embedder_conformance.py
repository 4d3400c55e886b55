"""Embedder conformance (``tests/support/embedder_conformance.py``) on the embedders that need
no model weights: the hashing ``WordsEmbedder`` that unit tests use in place of a model, and
the two wrappers, ``BatchingEmbedder`` and ``MemoEmbedder``, around it. The real models run the
same suite in ``tests/integration/test_embedder_conformance.py``."""

from __future__ import annotations

import pytest

from tests.support.embedder_conformance import TEXTS, EmbedderConformance
from tests.support.words_embedder import WordsEmbedder
from textmodels.embedding import BatchingEmbedder, MemoEmbedder

pytestmark = pytest.mark.unit


class TestWordsEmbedder(EmbedderConformance):
    @pytest.fixture
    def embedder(self) -> WordsEmbedder:
        return WordsEmbedder()


class TestBatchingWordsEmbedder(EmbedderConformance):
    @pytest.fixture
    def embedder(self) -> BatchingEmbedder:
        return BatchingEmbedder(WordsEmbedder(), max_texts=3)  # batches smaller than TEXTS


class TestMemoWordsEmbedder(EmbedderConformance):
    @pytest.fixture
    def embedder(self) -> MemoEmbedder:
        return MemoEmbedder(WordsEmbedder())

    def test_the_memo_answers_without_the_model(self, embedder: MemoEmbedder) -> None:
        first = embedder.embed(TEXTS)
        embedder.inner = None  # type: ignore[assignment]  # any model call now fails
        assert embedder.embed(TEXTS[::-1]) == first[::-1]
