"""Generator conformance: the behaviour every ``retrieval.generation.Generator`` owes its callers.

A mixin in the manner of haystack's ``haystack/testing/document_store.py``: a subclass named
``Test...`` provides the ``generator`` fixture and says, in two class attributes, what its
model can be held to:

* ``judges_relevance``: it answers from a passage that answers the question, and says "not
  found" when none does (a tiny random model cannot: its text is noise, which must still come
  out as a well-formed answer);
* ``deterministic``: the same question gives the same answer, streamed or not.

Whatever the model, an answer cites only passages it was given (``fit``), every ``[n]`` in its
text is one of its citations and every citation appears as ``[n]``, each citation carries its
passage's location, and the not-found answer is said in the question's language.

``tests/unit/test_generator_conformance.py`` runs it on ``ExtractiveGenerator`` and on
``VLLMGenerator`` against a scripted OpenAI-style endpoint (``ReaderModel`` below, served
through ``httpx.MockTransport``); ``tests/integration/test_generator_conformance.py`` on
``VLLMGenerator`` against the real vLLM server of the session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence

import httpx
import pytest

from retrieval.citations import grounded_answer, not_found
from retrieval.generation import Generator
from retrieval.prompt import NOT_FOUND_MARKER
from retrieval.types import NOT_FOUND, Answer, Message, Passage

PASSAGES = [
    Passage(
        n=1,
        chunk_id="c1",
        document_id="d1",
        version=1,
        title="Maintenance contract",
        text="The maintenance contract CTR-2024-0042 binds ACME Industries and the city of "
        "Lyon. The maintenance contract with ACME ends on March 3, 2026.",
        score=0.9,
        page_start=2,
        page_end=2,
        language="en",
    ),
    Passage(
        n=2,
        chunk_id="c2",
        document_id="d2",
        version=3,
        title="Invoice",
        text="Invoice INV-7 amounts to 120 EUR. It is payable within thirty days.",
        score=0.6,
        language="en",
    ),
    Passage(
        n=3,
        chunk_id="c3",
        document_id="d3",
        version=1,
        title="Congés",
        text="Les congés payés sont de cinq semaines par an. Le télétravail est possible deux "
        "jours par semaine.",
        score=0.4,
        language="fr",
    ),
]
# question → the passage that answers it
ANSWERED = {
    "When does the maintenance contract with ACME end?": 1,
    "Combien de semaines de congés payés par an ?": 3,
}
# questions none of PASSAGES answers
UNANSWERED = [
    "What colour are the feathers of emperor penguins?",
    "De quelle couleur sont les plumes des manchots empereurs ?",
]
LANGUAGE = dict(zip([*ANSWERED, *UNANSWERED], ["en", "fr", "en", "fr"], strict=True))
HISTORY = [
    Message("user", "Which companies does the maintenance contract bind?"),
    Message("assistant", "ACME Industries and the city of Lyon [1]."),
]
_MARKER = re.compile(r"\[(\d+)\]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def assert_well_formed(answer: Answer, sent: Sequence[Passage], question: str) -> None:
    """What any answer to ``question`` from the passages ``sent`` (``fit``'s) must be."""
    by_n = {p.n: p for p in sent}
    assert isinstance(answer.text, str) and answer.text.strip()
    assert not _CONTROL.search(answer.text)
    assert NOT_FOUND_MARKER not in answer.text
    cited = [c.n for c in answer.citations]
    assert len(cited) == len(set(cited)), "one citation per passage"
    assert set(cited) <= set(by_n), "cites only the passages it was given"
    assert {int(n) for n in _MARKER.findall(answer.text)} == set(cited)
    for c in answer.citations:
        p = by_n[c.n]
        assert (c.chunk_id, c.document_id, c.title, c.version, c.page) == (
            p.chunk_id,
            p.document_id,
            p.title,
            p.version,
            p.page_start,
        )
        assert c.quote and set(c.quote.split()) <= set(p.text.split()), "quotes its passage"
    assert answer.grounded == bool(answer.citations)
    if answer.text in NOT_FOUND.values():
        assert answer == not_found(question), "the not-found answer in the question's language"


def is_subsequence(part: Sequence[Passage], whole: Sequence[Passage]) -> bool:
    rest = iter(whole)
    return all(any(p == q for q in rest) for p in part)


class GeneratorConformance:
    """Subclasses provide ``generator`` and, where their model differs, the attributes below."""

    judges_relevance: bool = True
    deterministic: bool = True

    @pytest.fixture
    def generator(self) -> Generator:
        raise NotImplementedError("a subclass provides the generator under test")

    # -- identity ----------------------------------------------------------------------------

    def test_name_and_config(self, generator: Generator) -> None:
        assert isinstance(generator.name, str) and generator.name
        config = generator.to_dict()
        assert config["name"] == generator.name
        assert json.loads(json.dumps(config)) == config  # part of a release id: plain data
        assert generator.to_dict() == config

    # -- fit ---------------------------------------------------------------------------------

    def test_fit_keeps_passages_in_order(self, generator: Generator) -> None:
        for question in (*ANSWERED, *UNANSWERED):
            kept = generator.fit(question, PASSAGES)
            assert kept and is_subsequence(kept, PASSAGES)
            with_history = generator.fit(question, PASSAGES, HISTORY)
            assert is_subsequence(with_history, kept)  # history takes room, never gives it
        assert generator.fit("When?", []) == []

    # -- generate ----------------------------------------------------------------------------

    @pytest.mark.parametrize("question", list(ANSWERED))
    def test_answers_cite_only_fitted_passages(self, generator: Generator, question: str) -> None:
        answer = generator.generate(question, PASSAGES)
        assert_well_formed(answer, generator.fit(question, PASSAGES), question)
        if self.judges_relevance:
            assert answer.grounded
            assert ANSWERED[question] in {c.n for c in answer.citations}
        if self.deterministic:
            assert generator.generate(question, PASSAGES) == answer

    @pytest.mark.parametrize("question", [*ANSWERED, *UNANSWERED])
    def test_no_passage_gives_the_not_found_answer(
        self, generator: Generator, question: str
    ) -> None:
        answer = generator.generate(question, [])
        assert answer == not_found(question)
        assert answer.text == NOT_FOUND[LANGUAGE[question]]
        assert not answer.grounded and answer.citations == []

    @pytest.mark.parametrize("question", UNANSWERED)
    def test_irrelevant_passages_give_the_not_found_answer(
        self, generator: Generator, question: str
    ) -> None:
        answer = generator.generate(question, PASSAGES)
        assert_well_formed(answer, generator.fit(question, PASSAGES), question)
        if self.judges_relevance:
            assert answer.text == NOT_FOUND[LANGUAGE[question]]
            assert answer == not_found(question)

    # -- stream ------------------------------------------------------------------------------

    def joined(self, deltas: Iterator[str]) -> str:
        parts = list(deltas)
        assert parts and all(isinstance(d, str) and d for d in parts)
        return "".join(parts)

    @pytest.mark.parametrize("question", [*ANSWERED, *UNANSWERED])
    def test_streamed_text_checks_into_a_valid_answer(
        self, generator: Generator, question: str
    ) -> None:
        text = self.joined(generator.stream(question, PASSAGES))
        sent = generator.fit(question, PASSAGES)
        answer = grounded_answer(text, question, sent)
        assert_well_formed(answer, sent, question)
        if self.deterministic:
            assert answer.text == generator.generate(question, PASSAGES).text
        if self.judges_relevance and question in UNANSWERED:
            assert answer == not_found(question)

    @pytest.mark.parametrize("question", [*ANSWERED, *UNANSWERED])
    def test_a_stream_without_passages_says_not_found(
        self, generator: Generator, question: str
    ) -> None:
        assert self.joined(generator.stream(question, [])) == NOT_FOUND[LANGUAGE[question]]

    # -- history -----------------------------------------------------------------------------

    def test_history_is_accepted(self, generator: Generator) -> None:
        question = "And when does it end?"
        sent = generator.fit(question, PASSAGES, HISTORY)
        answer = generator.generate(question, PASSAGES, HISTORY)
        assert_well_formed(answer, sent, question)
        text = self.joined(generator.stream(question, PASSAGES, HISTORY))
        assert_well_formed(grounded_answer(text, question, sent), sent, question)


# -- a scripted OpenAI-style endpoint --------------------------------------------------------

_PASSAGE = re.compile(r"<passage n=(\d+)[^>]*>\n(.*?)\n</passage>", re.DOTALL)
_TERM = re.compile(r"\w{4,}")


class ReaderModel:
    """An ``httpx.MockTransport`` handler that answers ``/chat/completions`` as a careful model
    would, from the request alone: the passage sentence sharing most words (4+ letters) with
    the question, cited, when it shares at least two; the not-found marker otherwise. Every
    answer also cites a passage that was not sent ([9]), as models do; the generator must drop
    it. Streams one server-sent event per 4 characters. ``requests`` keeps the bodies."""

    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        messages = body["messages"]
        prompt = messages[-1]["content"]
        question = prompt.rsplit("Question: ", 1)[-1]
        reply = self.reply(question, prompt)
        if not body.get("stream"):
            return httpx.Response(
                200,
                json={
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"completion_tokens": len(reply) // 4 + 1},
                },
            )
        events = [{"choices": [{"delta": {"role": "assistant"}}]}]
        events += [
            {"choices": [{"delta": {"content": reply[i : i + 4]}}]} for i in range(0, len(reply), 4)
        ]
        lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
        return httpx.Response(
            200, content="".join(lines).encode(), headers={"content-type": "text/event-stream"}
        )

    @staticmethod
    def reply(question: str, prompt: str) -> str:
        asked = {w.lower() for w in _TERM.findall(question)}
        best, best_n, best_score = "", 0, 1
        for n, body in _PASSAGE.findall(prompt):
            for sentence in re.split(r"(?<=[.!?])\s+", body):
                score = len(asked & {w.lower() for w in _TERM.findall(sentence)})
                if score > best_score:
                    best, best_n, best_score = sentence, int(n), score
        return f"{best} [{best_n}][9]" if best else NOT_FOUND_MARKER
