"""Generator conformance (``tests/support/generator_conformance.py``) in the unit tier:

* ``ExtractiveGenerator``, the embedded default;
* ``VLLMGenerator`` against ``ReaderModel``, a scripted OpenAI-style endpoint served through
  ``httpx.MockTransport`` (the real vLLM server runs the same suite in
  ``tests/integration/test_generator_conformance.py``).
"""

from __future__ import annotations

import httpx
import pytest

from retrieval.extractive import ExtractiveGenerator
from retrieval.vllm import VLLMGenerator
from tests.support.generator_conformance import (
    HISTORY,
    PASSAGES,
    GeneratorConformance,
    ReaderModel,
)

pytestmark = pytest.mark.unit


class TestExtractiveGenerator(GeneratorConformance):
    @pytest.fixture
    def generator(self) -> ExtractiveGenerator:
        return ExtractiveGenerator()


class TestVLLMGeneratorScripted(GeneratorConformance):
    @pytest.fixture
    def model(self) -> ReaderModel:
        return ReaderModel()

    @pytest.fixture
    def generator(self, model: ReaderModel) -> VLLMGenerator:
        return VLLMGenerator(
            "http://llm/v1", "reader", transport=httpx.MockTransport(model), backoff_s=0
        )

    def test_history_reaches_the_model(self, generator: VLLMGenerator, model: ReaderModel) -> None:
        generator.generate("And when does it end?", PASSAGES, HISTORY)
        messages = model.requests[-1]["messages"]
        assert isinstance(messages, list)
        assert [(m["role"], m["content"]) for m in messages[1:3]] == [
            (h.role, h.content) for h in HISTORY
        ]

    def test_a_small_budget_drops_the_last_passages(self, model: ReaderModel) -> None:
        generator = VLLMGenerator(
            "http://llm/v1",
            "reader",
            transport=httpx.MockTransport(model),
            context_token_budget=200,
        )
        question = "When does the maintenance contract with ACME end?"
        kept = generator.fit(question, PASSAGES)
        assert 0 < len(kept) < len(PASSAGES)
        answer = generator.generate(question, PASSAGES)
        assert {c.n for c in answer.citations} <= {p.n for p in kept}
