"""The LangChain retriever finds the API whether its URL names ``/v1`` or not."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from retrieval.langchain import GedragRetriever

pytestmark = pytest.mark.unit

PASSAGE = {"text": "Leave is 25 days.", "document_id": "d1", "title": "HR", "score": 0.9}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://gedrag:8000", "http://gedrag:8000/v1/search"),
        ("http://gedrag:8000/", "http://gedrag:8000/v1/search"),
        ("http://gedrag:8000/v1", "http://gedrag:8000/v1/search"),  # issue #21: was /v1/v1/search
        ("http://gedrag:8000/v1/", "http://gedrag:8000/v1/search"),
        ("https://intra.example/gedrag/v1", "https://intra.example/gedrag/v1/search"),
    ],
)
def test_url_with_or_without_v1(url: str, expected: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"passages": [PASSAGE], "timings_ms": {}})

    retriever = GedragRetriever(
        url=url, api_key=SecretStr("gdr_k"), top_k=3, transport=httpx.MockTransport(answer)
    )
    docs = retriever.invoke("leave")
    assert str(seen[0].url) == expected
    assert seen[0].headers["authorization"] == "Bearer gdr_k"
    assert json.loads(seen[0].content) == {"query": "leave", "top_k": 3}
    assert docs[0].page_content == "Leave is 25 days." and docs[0].metadata["document_id"] == "d1"
