"""Questions in, grounded answers out: retrieval, then generation, then citation checks.

The API, the CLI and the evaluation harness all answer through :class:`QA`, so a release is
scored on exactly the code path users get.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from core.metrics import GENERATION, RETRIEVAL
from retrieval.citations import grounded_answer, small_talk
from retrieval.generation import Generator
from retrieval.search import Retriever, SearchResult
from retrieval.types import Answer, Message, Passage
from stores.vectors import SearchFilter

# Words that make a question lean on the conversation ("and its price?", "et pour elle ?").
_FOLLOW_UP = re.compile(
    r"\b(it|its|this|that|these|those|they|them|he|she|his|her|il|elle|ils|elles|ce|cet|cette|"
    r"ces|cela|ça|celui|celle|ceux|leur|leurs|son|sa|ses|y|en)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Streamed:
    """A streamed answer: the search, the standalone question, the text deltas, and the
    passages the generator used, against which ``finish`` validates the joined text."""

    search: SearchResult
    question: str
    deltas: Iterator[str]
    used: list[Passage]
    fixed: Answer | None = None  # an answer decided before any search (small talk)

    def finish(self, text: str) -> Answer:
        if self.fixed is not None:
            return self.fixed
        return finish_stream(text, self.used, self.question)


@dataclass(frozen=True)
class Reply:
    answer: Answer
    search: SearchResult
    question: str  # the standalone question actually searched
    used: list[Passage] = field(default_factory=list)  # the passages the generator was given
    draft: str = ""  # the generator's text before the citation checks (answer traces)


class QA:
    def __init__(self, retriever: Retriever, generator: Generator) -> None:
        self.retriever = retriever
        self.generator = generator

    def search(self, query: str, flt: SearchFilter, top_k: int | None = None) -> SearchResult:
        return observed(self.retriever.search(query, flt, top_k=top_k))

    def ask(
        self,
        question: str,
        flt: SearchFilter,
        *,
        top_k: int | None = None,
        history: Sequence[Message] = (),
    ) -> Reply:
        standalone = standalone_question(question, history)
        if (reply := small_talk(question)) is not None:
            return Reply(answer=reply, search=SearchResult([], {}), question=question)
        found = self.search(standalone, flt, top_k=top_k)
        used = self.generator.fit(standalone, found.passages, history)
        with GENERATION.labels(self.generator.name, "complete").time():
            answer = self.generator.generate(standalone, used, history)
        return Reply(
            answer=checked(answer, used, standalone),
            search=found,
            question=standalone,
            used=used,
            draft=answer.text,
        )

    def stream(
        self,
        question: str,
        flt: SearchFilter,
        *,
        top_k: int | None = None,
        history: Sequence[Message] = (),
    ) -> Streamed:
        standalone = standalone_question(question, history)
        if (reply := small_talk(question)) is not None:
            return Streamed(SearchResult([], {}), question, iter([reply.text]), [], reply)
        found = self.search(standalone, flt, top_k=top_k)
        used = self.generator.fit(standalone, found.passages, history)
        deltas = self.generator.stream(standalone, used, history)
        return Streamed(found, standalone, self._timed(deltas), used)

    def _timed(self, deltas: Iterator[str]) -> Iterator[str]:
        """The deltas, timing the whole generation (first call to the last delta)."""
        start = time.perf_counter()
        try:
            yield from deltas
        finally:
            elapsed = time.perf_counter() - start
            GENERATION.labels(self.generator.name, "stream").observe(elapsed)


def observed(result: SearchResult) -> SearchResult:
    """Record the search's per-stage timings in the retrieval histogram."""
    for stage, ms in result.timings_ms.items():
        RETRIEVAL.labels(stage).observe(ms / 1000)
    return result


def checked(answer: Answer, passages: Sequence[Passage], question: str) -> Answer:
    """Re-check whatever the generator returned: only the passages it used may be cited."""
    if not answer.grounded:
        return answer
    return grounded_answer(answer.text, question, passages)


def finish_stream(text: str, passages: Sequence[Passage], question: str) -> Answer:
    """The checked answer for the text a stream produced."""
    return grounded_answer(text, question, passages)


def standalone_question(question: str, history: Sequence[Message]) -> str:
    """A follow-up question made searchable on its own: the last user question is prepended
    when the new one is short or leans on it ("and its price?"). Without history, unchanged."""
    previous = [m.content for m in history if m.role == "user"]
    if not previous:
        return question
    words = question.split()
    if len(words) <= 6 or _FOLLOW_UP.search(question):
        return f"{previous[-1]} {question}"
    return question
