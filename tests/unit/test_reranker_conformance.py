"""Reranker conformance (``tests/support/reranker_conformance.py``) on ``CrossEncoderReranker``
with a tiny random BERT cross-encoder built offline once per session (~1 s): its scores mean
nothing, which the suite does not ask about."""

from __future__ import annotations

import pytest

from retrieval.rerank import CrossEncoderReranker
from tests.support.reranker_conformance import RerankerConformance
from tests.support.tiny_cross_encoder import build

pytestmark = pytest.mark.unit


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> CrossEncoderReranker:
    return CrossEncoderReranker(str(build(tmp_path_factory.mktemp("reranker") / "model")))


class TestCrossEncoderReranker(RerankerConformance):
    @pytest.fixture
    def reranker(self, tiny_cross_encoder: CrossEncoderReranker) -> CrossEncoderReranker:
        return tiny_cross_encoder

    def test_name_says_which_model(self, reranker: CrossEncoderReranker) -> None:
        assert reranker.name == f"cross-encoder:{reranker.path}"
