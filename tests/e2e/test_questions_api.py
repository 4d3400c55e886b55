"""Questions end to end: search, ask (plain and streamed), chat, OpenAI-compatible completions,
the LangChain adapter; tenant isolation and active versions on the real stores."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from retrieval.langchain import GedragRetriever
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

CONTRACT = b"""# Maintenance contract

## Duration

The maintenance contract CTR-2024-0042 between ACME Industries and the city of Lyon runs for
three years from March 3, 2025.

## Price

The annual price of the maintenance contract is 12,500 EUR, paid every January.
"""

HANDBOOK = b"""# Safety handbook

## Ladders

Ladders must be inspected every six months by the site safety officer.

## Helmets

Helmets are mandatory in every workshop of the Lyon plant.
"""

SECRET = b"""# Board minutes

The board approved the acquisition of Globex Robotics for 40 million EUR in a secret vote.
"""


@pytest.fixture(scope="module")
def qa_api(make_api_module: Callable[..., Api]) -> Api:
    api = make_api_module()
    jobs = [
        api.upload(
            "contract.md",
            CONTRACT,
            collection="contracts",
            tags="legal",
            metadata=json.dumps({"dept": "legal"}),
        ).json(),
        api.upload("handbook.md", HANDBOOK, collection="safety", tags="hr").json(),
        api.upload("minutes.md", SECRET, tenant="globex").json(),
    ]
    for up, tenant in zip(jobs, ("acme", "acme", "globex"), strict=True):
        assert api.wait(up["job_id"], tenant)["state"] == "succeeded"
    api.docs = {"contract": jobs[0]["document_id"], "handbook": jobs[1]["document_id"]}  # type: ignore[attr-defined]
    return api


def post(api: Api, path: str, body: dict[str, object], tenant: str = "acme") -> httpx.Response:
    return api.client.post(path, headers=api.h(tenant), json=body)


def test_search_returns_scored_passages_with_timings(qa_api: Api) -> None:
    r = post(qa_api, "/v1/search", {"query": "annual price of the maintenance contract"})
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["passages"][0]
    assert top["document_id"] == qa_api.docs["contract"] and "12,500 EUR" in top["text"]  # type: ignore[attr-defined]
    assert top["n"] == 1 and top["score"] > 0 and top["collection"] == "contracts"
    assert {"dense", "sparse", "graph", "sentence", "sentence_terms", "total"} <= set(
        body["timings_ms"]
    )


def test_weights_follow_the_query_language(qa_api: Api) -> None:
    """English queries rescore candidates by their best sentence (the default model is
    English); French ones keep the BM25-led weights."""
    r = post(qa_api, "/v1/search", {"query": "prix annuel du contrat de maintenance"})
    assert r.status_code == 200, r.text
    assert "sentence" not in r.json()["timings_ms"]
    assert "12,500 EUR" in r.json()["passages"][0]["text"]


def test_sentence_scores_rank_candidates_by_their_best_sentence(qa_api: Api) -> None:
    from core.settings import FusionWeights
    from ingestion.indexing import Indexer
    from retrieval import factory
    from stores.vectors import SearchFilter

    runtime = qa_api.client.app.state.runtime  # type: ignore[attr-defined]
    retriever = factory.qa(runtime).retriever
    only = FusionWeights(dense=0, sparse=0, graph=0, sentence=1, sentence_terms=0)
    cfg = retriever.config.model_copy(update={"language_weights": {"en": only}, "mmr_lambda": 1})
    query = "who inspects the ladders"
    tenant = runtime.catalog.tenants.get("acme").id
    found = retriever.search(query, SearchFilter(tenant_id=tenant), config=cfg).passages
    assert len(found) == 2  # both chunks of the tenant, ranked by their best sentence
    q = np.asarray(retriever.embedder.embed([query])[0])
    indexer = Indexer(runtime.settings, runtime.models)
    pooled = indexer.models.embedder.embed_spans(
        [p.text for p in found], [indexer.spans_of(p.text) for p in found]
    )
    best = [max(float(q @ np.asarray(s)) for s in parts) for _, parts in pooled]
    assert best == sorted(best, reverse=True)
    assert "site safety officer" in found[0].text


def test_filters_narrow_the_search(qa_api: Api) -> None:
    docs = qa_api.docs  # type: ignore[attr-defined]

    def found(**filters: object) -> set[str]:
        r = post(qa_api, "/v1/search", {"query": "Lyon", **filters})
        assert r.status_code == 200, r.text
        return {p["document_id"] for p in r.json()["passages"]}

    assert found() == {docs["contract"], docs["handbook"]}
    assert found(collections=["safety"]) == {docs["handbook"]}
    assert found(tags=["legal"]) == {docs["contract"]}
    assert found(metadata={"dept": "legal"}) == {docs["contract"]}
    assert found(document_ids=[docs["handbook"]]) == {docs["handbook"]}
    assert (
        found(uploaded_after="2000-01-01T00:00:00Z", uploaded_before="2001-01-01T00:00:00Z")
        == set()
    )
    bad = post(qa_api, "/v1/search", {"query": "x", "top_k": 0})
    assert bad.status_code == 422 and bad.json()["field"] == "top_k"


def test_ask_answers_with_valid_citations(qa_api: Api) -> None:
    r = post(qa_api, "/v1/ask", {"question": "How often must ladders be inspected?"})
    body = r.json()
    assert body["grounded"] is True, body
    assert "six months" in body["answer"] and "[" in body["answer"]
    cite = body["citations"][0]
    assert cite["document_id"] == qa_api.docs["handbook"]  # type: ignore[attr-defined]
    assert "inspected every six months" in cite["quote"] and cite["version"] == 1
    retrieved = {p["chunk_id"] for p in body["passages"]}
    assert all(c["chunk_id"] in retrieved for c in body["citations"])


def test_ask_says_not_found_and_never_leaks_other_tenants(qa_api: Api) -> None:
    r = post(qa_api, "/v1/ask", {"question": "What did the board approve about Globex Robotics?"})
    body = r.json()
    assert body["grounded"] is False and body["citations"] == []
    assert "Not found in the documents" in body["answer"]
    assert all("Globex" not in p["text"] for p in body["passages"])
    theirs = post(
        qa_api,
        "/v1/ask",
        {"question": "What did the board approve about Globex Robotics?"},
        "globex",
    ).json()
    assert theirs["grounded"] and "40 million EUR" in theirs["answer"]
    fr = post(qa_api, "/v1/ask", {"question": "Quel est le salaire du directeur général ?"}).json()
    assert fr["grounded"] is False and fr["answer"].startswith("Introuvable")


def sse(text: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_ask_streams_tokens_then_citations_then_done(qa_api: Api) -> None:
    r = post(
        qa_api, "/v1/ask", {"question": "How often must ladders be inspected?", "stream": True}
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    names = [name for name, _ in events]
    assert names[0] == "passages" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) == {"token"} and len(names) > 5
    streamed = "".join(str(data["text"]) for name, data in events if name == "token")
    final = events[-2][1]
    assert final["answer"] == streamed and final["grounded"] is True
    assert final["citations"]


def test_chat_rewrites_follow_ups(qa_api: Api) -> None:
    messages = [
        {"role": "user", "content": "What is the duration of the maintenance contract?"},
        {"role": "assistant", "content": "Three years [1]."},
        {"role": "user", "content": "And its annual price?"},
    ]
    body = post(qa_api, "/v1/chat", {"messages": messages}).json()
    assert body["question"].startswith("What is the duration") and body["question"].endswith(
        "price?"
    )
    assert "12,500 EUR" in body["answer"]
    bad = post(qa_api, "/v1/chat", {"messages": messages[:2]})
    assert bad.status_code == 422 and bad.json()["field"] == "messages"


def test_openai_compatible_chat_completions(qa_api: Api) -> None:
    body = {
        "model": "gedrag/safety",
        "messages": [{"role": "user", "content": "Are helmets mandatory?"}],
    }
    r = post(qa_api, "/v1/chat/completions", body).json()
    assert r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant"
    assert "Helmets are mandatory" in r["choices"][0]["message"]["content"]
    assert {c["document_id"] for c in r["citations"]} == {qa_api.docs["handbook"]}  # type: ignore[attr-defined]
    streamed = post(qa_api, "/v1/chat/completions", {**body, "stream": True}).text
    chunks = [line[6:] for line in streamed.splitlines() if line.startswith("data: ")]
    assert chunks[-1] == "[DONE]"
    parsed = [json.loads(c) for c in chunks[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in parsed)
    assert "Helmets are mandatory" in text and parsed[-1]["choices"][0]["finish_reason"] == "stop"
    assert parsed[-1]["citations"]


def test_langchain_retriever(qa_api: Api) -> None:
    def to_app(request: httpx.Request) -> httpx.Response:  # httpx request -> the app in-process
        r = qa_api.client.request(
            request.method, request.url.path, headers=dict(request.headers), content=request.content
        )
        return httpx.Response(r.status_code, headers=dict(r.headers), content=r.content)

    retriever = GedragRetriever(
        url="http://testserver",
        api_key=SecretStr(qa_api.keys["acme"]),
        collections=["contracts"],
        top_k=2,
        transport=httpx.MockTransport(to_app),
    )
    docs = retriever.invoke("annual price")
    assert docs and "12,500 EUR" in docs[0].page_content
    assert docs[0].metadata["document_id"] == qa_api.docs["contract"]  # type: ignore[attr-defined]


def test_only_the_active_version_is_searched(make_api: Callable[..., Api]) -> None:
    api = make_api(None)
    up = api.upload("policy.md", b"# Policy\n\nRemote work is allowed two days per week.").json()
    api.wait(up["job_id"])
    v2 = api.client.post(
        f"/v1/documents/{up['document_id']}/versions",
        headers=api.h(),
        files={"file": ("policy.md", b"# Policy\n\nRemote work is allowed four days per week.")},
    ).json()
    api.wait(v2["job_id"])
    texts = [
        p["text"] for p in post(api, "/v1/search", {"query": "remote work days"}).json()["passages"]
    ]
    assert any("four days" in t for t in texts) and not any("two days" in t for t in texts)
    api.purge(up["document_id"])
    assert post(api, "/v1/search", {"query": "remote work days"}).json()["passages"] == []
