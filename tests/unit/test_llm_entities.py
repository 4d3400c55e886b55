"""The LLM extractor's HTTP edge, with httpx.MockTransport standing in for the endpoint."""

from __future__ import annotations

import json

import httpx
import pytest

from core.errors import StoreUnavailable
from textmodels.llm_entities import LLMEntityExtractor

pytestmark = pytest.mark.unit

TEXT = "Le contrat CTR-2024-0042 lie ACME Industries et la ville de Lyon (contact: a@acme.fr)."


def extractor(handler) -> LLMEntityExtractor:  # type: ignore[no-untyped-def]
    return LLMEntityExtractor("http://llm/v1", "tiny", transport=httpx.MockTransport(handler))


def answer(content: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


def test_names_from_the_model_values_from_the_rules() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return answer(
            json.dumps(
                {
                    "entities": [
                        {"name": "ACME Industries", "kind": "org"},
                        {"name": "la ville de Lyon", "kind": "place"},
                        {"name": "Lyon", "kind": "city"},  # unknown kind: kept as a plain name
                        {"name": "", "kind": "org"},  # dropped
                        "garbage",  # dropped
                    ]
                }
            )
        )

    found = {e.key: e.kind for e in extractor(handler).extract(TEXT, "fr")}
    assert found["acme industries"] == "org"
    assert found["ville de lyon"] == "place"
    assert found["lyon"] == "name"
    assert found["email:a@acme.fr"] == "email"
    assert any(k.startswith("ref:") for k in found)
    body = seen[0]
    assert body["response_format"] == {"type": "json_object"}
    assert TEXT in body["messages"][1]["content"]  # type: ignore[index]


def test_unusable_output_falls_back_to_the_rules() -> None:
    rules_only = LLMEntityExtractor("http://x", "m").rules.extract(TEXT, "fr")
    for reply in (answer("not json"), answer('{"other": []}'), httpx.Response(400, text="bad")):
        got = extractor(lambda _r, reply=reply: reply).extract(TEXT, "fr")
        assert got == rules_only


def test_an_unreachable_or_overloaded_endpoint_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(StoreUnavailable, match="unreachable"):
        extractor(refuse).extract(TEXT, "fr")
    with pytest.raises(StoreUnavailable, match="503"):
        extractor(lambda _r: httpx.Response(503)).extract(TEXT, "fr")
