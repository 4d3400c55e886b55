"""EntityExtractor conformance (``tests/support/extractor_conformance.py``) on
``LLMEntityExtractor`` against the real vLLM server of the session
(``tests/support/vllm_server.py``: CPU build, a tiny random Llama, JSON mode). Its replies are
noise: the extractor must still return canonical, unique keys of allowed kinds, the same ones
for the same text (temperature 0), and the rules' values whatever the model says."""

from __future__ import annotations

import pytest

from tests.support.extractor_conformance import ExtractorConformance
from tests.support.vllm_server import MODEL, Server
from textmodels.llm_entities import LLMEntityExtractor

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class TestLLMEntityExtractor(ExtractorConformance):
    @pytest.fixture
    def extractor(self, vllm_server: Server) -> LLMEntityExtractor:
        # The random model never closes its JSON: each reply is cut at max_tokens and falls back
        # to the rules. 256 tokens take 1-2 s here, the default 1,024 3-4 s for nothing more.
        return LLMEntityExtractor(
            vllm_server.running().base_url, MODEL, timeout_s=60, max_tokens=256
        )
