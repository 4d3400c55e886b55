"""The embedded generator: answers by extracting, never inventing.

It scores every sentence of the retrieved passages against the question's terms (stemmed, as the
sparse index does, weighted by how rare each term is among the passages), keeps the best few,
stitches them in reading order with a citation after each, and quotes exactly what it took.
When even the best sentence covers too little of the question, it says the documents do not
answer rather than return a loosely related sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.metrics import TOKENS
from retrieval.citations import citation, not_found
from retrieval.types import Answer, Citation, Message, Passage
from textmodels.language import detect_language
from textmodels.sentences import sentences
from textmodels.sparse import SparseEncoder

_MIN_WORDS = 4
_WINDOW_CHARS = 450
# A two-sentence window must cover more of the question than its first sentence to win.
_WINDOW_PENALTY = 0.9


@dataclass(frozen=True)
class _Candidate:
    passage: Passage
    position: int
    text: str
    score: float
    coverage: float
    also: tuple[tuple[Passage, str], ...] = ()  # other passages that say it, in their words


class ExtractiveGenerator:
    """Stitches the passages' most relevant sentences, each cited; no model weights needed."""

    def __init__(
        self, *, max_sentences: int = 3, min_coverage: float = 0.5, max_chars: int = 900
    ) -> None:
        self.max_sentences = max_sentences
        self.min_coverage = min_coverage
        self.max_chars = max_chars
        self.sparse = SparseEncoder()

    @property
    def name(self) -> str:
        return "extractive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_sentences": self.max_sentences,
            "min_coverage": self.min_coverage,
            "max_chars": self.max_chars,
        }

    def fit(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> list[Passage]:
        """All of them: extraction has no context limit."""
        return list(passages)

    def generate(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> Answer:
        picked = self._pick(question, passages, detect_language(question))
        if not picked:
            return not_found(question)
        parts = []
        citations: dict[int, Citation] = {}
        for c in picked:
            sources = [(c.passage, c.text), *c.also]
            parts.append(c.text + " " + "".join(f"[{p.n}]" for p, _ in sources))
            for p, quote in sources:
                citations.setdefault(p.n, citation(p, quote))
        text = " ".join(parts)
        TOKENS.labels(self.name).inc(len(text.split()))
        return Answer(text=text, citations=list(citations.values()), grounded=True)

    def stream(
        self, question: str, passages: Sequence[Passage], history: Sequence[Message] = ()
    ) -> Iterator[str]:
        text = self.generate(question, passages, history).text
        for match in re.finditer(r"\S+\s*", text):
            yield match.group()

    def _pick(self, question: str, passages: Sequence[Passage], language: str) -> list[_Candidate]:
        query_terms = set(self.sparse.term_ids(question, language))
        if not query_terms or not passages:
            return []
        units: list[tuple[Passage, int, str, set[int]]] = []  # one sentence each
        for p in passages:
            heading = " > ".join(p.section_path)  # the chunker's first line, not a sentence
            for i, text in enumerate(sentences(p.text)):
                if len(text.split()) >= _MIN_WORDS and text != heading:
                    units.append(
                        (p, i, text, set(self.sparse.term_ids(text, p.language or language)))
                    )
        if not units:
            return []
        # IDF over the passages' sentences: a term in every sentence says nothing.
        n = len(units)
        idf = {
            t: math.log(1 + n / (1 + sum(t in terms for *_, terms in units))) for t in query_terms
        }
        total = sum(idf.values()) or 1.0
        candidates: list[_Candidate] = []
        # A sentence alone, or with the next one: an answer often continues its topic sentence.
        for j, (p, i, text, terms) in enumerate(units):
            windows = [(text, terms, 1.0)]
            if j + 1 < len(units) and units[j + 1][0] is p and units[j + 1][1] == i + 1:
                nxt = units[j + 1]
                if len(text) + len(nxt[2]) <= _WINDOW_CHARS:
                    windows.append((f"{text} {nxt[2]}", terms | nxt[3], _WINDOW_PENALTY))
            for window, covered, penalty in windows:
                coverage = sum(idf[t] for t in query_terms & covered) / total
                prior = 1.0 / (1 + 0.15 * (p.n - 1))
                candidates.append(_Candidate(p, i, window, coverage * prior * penalty, coverage))
        candidates.sort(key=lambda c: -c.score)
        if candidates[0].coverage < self.min_coverage:
            return []
        best = candidates[0].score
        picked: list[_Candidate] = []
        length = 0
        for c in candidates:
            if len(picked) == self.max_sentences or c.score < 0.6 * best:
                break
            overlaps = any(
                c.passage is q.passage and (c.text in q.text or q.text in c.text) for q in picked
            )
            said = next((k for k, q in enumerate(picked) if _same(c.text, q.text)), None)
            if said is not None and not overlaps:  # another passage says it too: cite both
                q = picked[said]
                if c.passage is not q.passage and all(c.passage is not p for p, _ in q.also):
                    picked[said] = replace(q, also=(*q.also, (c.passage, c.text)))
                continue
            if overlaps or length + len(c.text) > self.max_chars:
                continue
            picked.append(c)
            length += len(c.text)
        return sorted(picked, key=lambda c: (c.passage.n, c.position))


def _same(a: str, b: str) -> bool:
    """One says what the other says (up to spacing and case)."""
    a, b = " ".join(a.split()).lower(), " ".join(b.split()).lower()
    return a in b or b in a
