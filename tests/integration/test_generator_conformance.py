"""Generator conformance (``tests/support/generator_conformance.py``) on ``VLLMGenerator``
against the real vLLM server of the session (``tests/support/vllm_server.py``: CPU build, a
tiny random Llama). Its replies are noise, so the suite holds it to what any model owes the
caller — answers well-formed, citing only passages sent, the not-found answer in the
question's language — but not to judging relevance or to repeating itself."""

from __future__ import annotations

import pytest

from retrieval.vllm import VLLMGenerator
from tests.support.generator_conformance import GeneratorConformance
from tests.support.vllm_server import Server

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class TestVLLMGenerator(GeneratorConformance):
    judges_relevance = False
    deterministic = False

    @pytest.fixture
    def generator(self, vllm_server: Server) -> VLLMGenerator:
        # 32 tokens: replies of a few words, ~0.3 s each on 2 cores
        return vllm_server.running().generator(max_tokens=32)
