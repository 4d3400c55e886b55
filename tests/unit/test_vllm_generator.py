"""VLLMGenerator's HTTP edge, with httpx.MockTransport standing in for the vLLM server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from core.errors import ConfigurationError, StoreUnavailable
from retrieval.prompt import NOT_FOUND_MARKER
from retrieval.types import NOT_FOUND, Passage
from retrieval.vllm import VLLMGenerator, estimate_tokens, to_answer

pytestmark = pytest.mark.unit

Handler = Callable[[httpx.Request], httpx.Response]

PASSAGES = [
    Passage(
        n=1,
        chunk_id="c1",
        document_id="d1",
        version=1,
        title="Contract",
        text="The contract CTR-42 ends on March 3, 2026. It binds ACME and Lyon.",
        score=0.9,
        page_start=2,
    ),
    Passage(
        n=2,
        chunk_id="c2",
        document_id="d2",
        version=3,
        title="Invoice",
        text="Invoice INV-7 amounts to 120 EUR.",
        score=0.5,
    ),
]


def generator(handler: Handler, **kwargs: object) -> VLLMGenerator:
    kwargs.setdefault("backoff_s", 0)
    return VLLMGenerator(
        "http://llm/v1/",
        "tiny",
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


def reply(content: object, finish: str = "stop") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [
                {"message": {"role": "assistant", "content": content}, "finish_reason": finish}
            ]
        },
    )


def sse(*deltas: str, done: bool = True) -> bytes:
    events = [{"choices": [{"delta": {"role": "assistant"}}]}]
    events += [{"choices": [{"delta": {"content": d}}]} for d in deltas]
    lines = [f"data: {json.dumps(e)}\n\n" for e in events]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


class Recorder:
    """A handler answering from a list of responses (or exceptions), recording each request."""

    def __init__(self, *outcomes: httpx.Response | Exception) -> None:
        self.outcomes = list(outcomes)
        self.bodies: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_answer_keeps_valid_citations_and_drops_invalid_markers() -> None:
    handler = Recorder(reply("The contract ends on March 3, 2026 [1][7]. It costs 120 EUR [2, 9]."))
    answer = generator(handler).generate("When does the contract end?", PASSAGES)
    assert answer.grounded
    assert answer.text == "The contract ends on March 3, 2026 [1]. It costs 120 EUR [2]."
    assert [(c.n, c.chunk_id, c.page) for c in answer.citations] == [(1, "c1", 2), (2, "c2", None)]
    assert answer.citations[0].quote.startswith("The contract CTR-42 ends on March 3, 2026")
    body = handler.bodies[0]
    assert body["model"] == "tiny"
    assert body["stream"] is False
    assert body["max_tokens"] == 512
    assert body["temperature"] == 0.0
    messages = body["messages"]
    assert isinstance(messages, list)
    assert messages[0]["role"] == "system"
    assert "<passage n=2" in messages[-1]["content"]


@pytest.mark.parametrize(
    "content",
    [NOT_FOUND_MARKER, f"  {NOT_FOUND_MARKER}.", f"Sorry. {NOT_FOUND_MARKER} [1]"],
)
def test_not_found_marker_gives_the_not_found_answer(content: str) -> None:
    answer = generator(Recorder(reply(content))).generate("When does it end?", PASSAGES)
    assert answer.text == NOT_FOUND["en"]
    assert answer.citations == []
    assert not answer.grounded


def test_not_found_answer_speaks_the_question_language() -> None:
    answer = generator(Recorder(reply(NOT_FOUND_MARKER))).generate(
        "Quelle est la date de fin du contrat ?", PASSAGES
    )
    assert answer.text == NOT_FOUND["fr"]


def test_no_passages_answers_not_found_without_calling_the_model() -> None:
    handler = Recorder()
    answer = generator(handler).generate("Quand le contrat se termine-t-il ?", [])
    assert answer == to_answer("", "Quand le contrat se termine-t-il ?", [])
    assert answer.text == NOT_FOUND["fr"]
    assert not answer.grounded
    assert handler.bodies == []


@pytest.mark.parametrize("content", ["", "   \n", None, 42, ["x"], "\x00\ufffd\x07", "[9] [3]"])
def test_garbage_replies_degrade_to_not_found(content: object) -> None:
    answer = generator(Recorder(reply(content))).generate("When?", PASSAGES)
    assert answer.text == NOT_FOUND["en"]
    assert not answer.grounded
    assert answer.citations == []


@pytest.mark.parametrize("body", [b"not json", b'{"choices": []}', b'{"choices": [{"x": 1}]}'])
def test_malformed_bodies_degrade_to_not_found(body: bytes) -> None:
    answer = generator(Recorder(httpx.Response(200, content=body))).generate("When?", PASSAGES)
    assert not answer.grounded


def test_uncited_garbage_text_is_kept_cleaned() -> None:
    answer = generator(Recorder(reply("\x00blorp\ufffd zzk [4] qq"))).generate("When?", PASSAGES)
    assert answer.text == "blorp zzk  qq"
    assert answer.citations == []
    assert not answer.grounded  # kept, but not presented as grounded


def test_retries_on_503_then_succeeds() -> None:
    handler = Recorder(
        httpx.Response(503, text="loading"),
        httpx.ConnectError("refused"),
        reply("Ends in 2026 [1]."),
    )
    answer = generator(handler).generate("When?", PASSAGES)
    assert answer.text == "Ends in 2026 [1]."
    assert len(handler.bodies) == 3


def test_429_is_retried_then_store_unavailable() -> None:
    handler = Recorder(*[httpx.Response(429, json={"error": {"message": "busy"}})] * 2)
    with pytest.raises(StoreUnavailable, match="busy"):
        generator(handler, max_retries=1).generate("When?", PASSAGES)
    assert len(handler.bodies) == 2


def test_4xx_is_a_configuration_error_and_not_retried() -> None:
    handler = Recorder(
        httpx.Response(404, json={"error": {"message": "The model `tiny` does not exist."}})
    )
    with pytest.raises(ConfigurationError, match=r"HTTP 404.*does not exist"):
        generator(handler).generate("When?", PASSAGES)
    assert len(handler.bodies) == 1


def test_400_is_a_configuration_error_and_not_retried() -> None:
    handler = Recorder(httpx.Response(400, text="bad request"))
    with pytest.raises(ConfigurationError, match="bad request"):
        generator(handler).generate("When?", PASSAGES)
    assert len(handler.bodies) == 1


def test_timeout_raises_store_unavailable_after_retries() -> None:
    handler = Recorder(*[httpx.ReadTimeout("slow")] * 3)
    with pytest.raises(StoreUnavailable, match="3 attempts: ReadTimeout"):
        generator(handler).generate("When?", PASSAGES)
    assert len(handler.bodies) == 3


def test_stream_joins_deltas() -> None:
    handler = Recorder(httpx.Response(200, content=sse("Ends ", "in 2026", " [1].")))
    gen = generator(handler)
    deltas = list(gen.stream("When?", PASSAGES))
    assert "".join(deltas) == "Ends in 2026 [1]."
    assert len(deltas) >= 2
    assert handler.bodies[0]["stream"] is True
    answer = to_answer("".join(deltas), "When?", gen.fit("When?", PASSAGES))
    assert [c.n for c in answer.citations] == [1]


def test_stream_not_found_marker_is_replaced() -> None:
    handler = Recorder(httpx.Response(200, content=sse("NOT", "_FO", "UND", " more")))
    deltas = list(generator(handler).stream("Quelle est la date ?", PASSAGES))
    assert deltas == [NOT_FOUND["fr"]]


def test_stream_text_starting_like_the_marker_is_kept() -> None:
    handler = Recorder(httpx.Response(200, content=sse("NOT", " now", ", later [1].")))
    assert "".join(generator(handler).stream("When?", PASSAGES)) == "NOT now, later [1]."


def test_stream_retries_until_the_first_delta() -> None:
    handler = Recorder(
        httpx.Response(502, text="bad gateway"),
        httpx.ConnectError("refused"),
        httpx.Response(200, content=sse("ok")),
    )
    assert list(generator(handler).stream("When?", PASSAGES)) == ["ok"]
    assert len(handler.bodies) == 3


def test_stream_errors_before_the_first_delta_raise() -> None:
    handler = Recorder(*[httpx.ConnectError("refused")] * 3)
    with pytest.raises(StoreUnavailable):
        list(generator(handler).stream("When?", PASSAGES))
    handler = Recorder(httpx.Response(404, json={"error": {"message": "no such model"}}))
    with pytest.raises(ConfigurationError, match="no such model"):
        list(generator(handler).stream("When?", PASSAGES))


class Drops(httpx.SyncByteStream):
    """A response body that sends some events, then loses the connection."""

    def __init__(self, head: bytes) -> None:
        self.head = head

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def test_stream_cut_mid_way_keeps_the_text() -> None:
    handler = Recorder(
        httpx.Response(200, stream=Drops(sse("The contract ", "ends in", done=False)))
    )
    deltas = list(generator(handler).stream("When?", PASSAGES))
    assert "".join(deltas) == "The contract ends in"
    assert len(handler.bodies) == 1  # not retried: the text would be generated twice


def test_stream_without_done_ends_cleanly() -> None:
    handler = Recorder(httpx.Response(200, content=sse("a", "b", done=False) + b": ping\n\n"))
    assert "".join(generator(handler).stream("When?", PASSAGES)) == "ab"


def test_stream_error_event_ends_the_stream() -> None:
    body = sse("partial", done=False) + b'data: {"error": {"message": "boom"}}\n\n'
    handler = Recorder(httpx.Response(200, content=body + sse("never")))
    assert list(generator(handler).stream("When?", PASSAGES)) == ["partial"]


def test_context_budget_drops_passages_from_the_end() -> None:
    big = [
        Passage(n=i, chunk_id=f"c{i}", document_id="d", version=1, title=f"T{i}",
                text="word " * 400, score=1 / i)
        for i in range(1, 6)
    ]  # fmt: skip
    handler = Recorder(reply("Something [1] [3]."))
    gen = generator(handler, context_token_budget=1200)
    kept = gen.fit("When?", big)
    assert [p.n for p in kept] == [1, 2]
    answer = gen.generate("When?", big)
    content = handler.bodies[0]["messages"][-1]["content"]  # type: ignore[index]
    assert "<passage n=2" in content
    assert "<passage n=3" not in content
    assert [c.n for c in answer.citations] == [1]  # [3] was not sent: dropped
    assert estimate_tokens("x" * 400) == 101


def test_budget_too_small_for_any_passage_is_not_found() -> None:
    handler = Recorder()
    gen = generator(handler, context_token_budget=50)
    assert not gen.generate("When?", PASSAGES).grounded
    assert list(gen.stream("When?", PASSAGES)) == [NOT_FOUND["en"]]
    assert handler.bodies == []


def test_to_dict_describes_what_shapes_answers() -> None:
    gen = VLLMGenerator("http://llm/v1/", "tiny", api_key="k", max_tokens=64)
    config = gen.to_dict()
    assert config["name"] == gen.name == "vllm"
    assert config["base_url"] == "http://llm/v1"
    assert config["max_tokens"] == 64
    assert NOT_FOUND_MARKER in config["prompt"]
    assert "api_key" not in config
    assert gen.client.headers["Authorization"] == "Bearer k"


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        VLLMGenerator("http://llm/v1", "tiny", max_tokens=0)
