"""EntityExtractor conformance (``tests/support/extractor_conformance.py``) in the unit tier:
the rule-based extractor, and the LLM extractor against ``NamesModel``, a scripted OpenAI-style
endpoint served through ``httpx.MockTransport`` (the real vLLM server runs the same suite in
``tests/integration/test_extractor_conformance.py``)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.extractor_conformance import ENGLISH, ExtractorConformance, NamesModel
from textmodels.entities import RuleBasedEntityExtractor
from textmodels.llm_entities import MAX_TOKENS, LLMEntityExtractor

pytestmark = pytest.mark.unit


class TestRuleBasedEntityExtractor(ExtractorConformance):
    @pytest.fixture
    def extractor(self) -> RuleBasedEntityExtractor:
        return RuleBasedEntityExtractor()


class TestLLMEntityExtractorScripted(ExtractorConformance):
    @pytest.fixture
    def model(self) -> NamesModel:
        return NamesModel()

    @pytest.fixture
    def extractor(self, model: NamesModel) -> LLMEntityExtractor:
        return LLMEntityExtractor("http://llm/v1", "names", transport=httpx.MockTransport(model))

    def test_the_models_names_are_used(
        self, extractor: LLMEntityExtractor, model: NamesModel
    ) -> None:
        found = {e.key: e.kind for e in extractor.extract(ENGLISH, "en")}
        assert found["acme industries"] == "org"  # the rules alone say "name"
        assert found["john smith"] == "person"
        # a model that never closes its JSON must not write to the context limit
        assert model.requests[-1]["max_tokens"] == MAX_TOKENS
