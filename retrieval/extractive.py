"""The embedded answerer: answers by extracting, never inventing.

1. **Units.** Each passage's text without its heading line (the chunker writes the section path
   first; glued to the first sentence it read "Congé sans solde Le salarié…"), split into whole
   sentences: at ``.``, ``!``, ``?``, paragraph and list breaks, never at ``;`` (a clause is not an
   answer). A unit that starts mid-sentence (a chunk cut) is a fragment and ranks lower.
2. **Scores.** Each unit (alone, or with the next sentence) is scored against the question:
   *terms*, the IDF-weighted share of the question's stemmed terms it holds (its heading's terms
   count for less); *meaning*, the cosine between the question's and the unit's vectors when an
   embedder is given (paraphrased questions share few terms with their answer); *type*, whether it
   holds the kind of figure the question asks for (a duration, an amount, a date, a count);
   *rank*, the retrieval rank of its passage.
3. **Refusal.** When even the best unit has too little evidence (too few of the question's terms
   and a meaning too far), the answer is "not found", in the question's language.
4. **Answer.** The best unit, then others close to it, never the same sentence twice (a sentence
   two passages share is said once and cites both), each followed by its citation; a unit that
   leans on the sentence before it ("Ce délai…", "However…") brings that sentence along.

The defaults were chosen by cross-validation on the shared French and English suites
(``bench/answers.py --cv``), not on the sets the README reports alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.metrics import TOKENS
from retrieval.citations import citation, not_found
from retrieval.types import Answer, Citation, Message, Passage
from textmodels.embedding import Embedder
from textmodels.injection import addressed_to_assistant
from textmodels.language import detect_language
from textmodels.sparse import SparseEncoder

_MIN_WORDS = 4
_WINDOW_CHARS = 450
# A two-sentence window must cover more of the question than its first sentence to win.
_WINDOW_PENALTY = 0.9
_FRAGMENT_PENALTY = 0.7
_HEADING_WEIGHT = 0.5
# Whole sentences: end punctuation followed by a space and a capital, digit or quote; paragraph
# breaks; list items. Not after an abbreviation-like single letter or a number's dot.
_SPLIT = re.compile(
    r"(?<=[.!?])\s+(?=[«\"'(\[A-ZÀ-ÖØ-Þ0-9])(?<!\b[A-Za-z]\.\s)|\n{2,}|\n(?=\s*(?:[-*•]|\d+[.)])\s)"
)
_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")
_ITEM = re.compile(r"\s*(?:[-*•]|\d+[.)])\s")
# A sentence that leans on the one before it.
_LEANS = re.compile(
    r"^(?:il|elle|ils|elles|ce|cet|cette|ces|cela|ceci|celui-ci|celle-ci|ceux-ci|dans ce cas|"
    r"toutefois|cependant|en revanche|par ailleurs|de plus|en outre|sinon|ainsi|"
    r"it|they|this|these|those|such|however|otherwise|in this case|also|then)\b",
    re.IGNORECASE,
)
# What a question asks for, and how a unit says it.
_ASKS = {
    "duration": re.compile(
        r"\b(?:combien de temps|quel(?:le)?s? (?:est |sont )?(?:le |la |les )?(?:délai|durée)s?|"
        r"pendant combien|dans quel délai|jusqu'à quand|how long|what period|how many (?:days|"
        r"weeks|months|years)|délai|durée)\b",
        re.IGNORECASE,
    ),
    "amount": re.compile(
        r"\b(?:combien (?:co[uû]te|coûtent|faut-il payer|vais-je|dois-je payer|ça coûte)|"
        r"quel(?:le)? (?:est |sont )?(?:le |la )?(?:montant|prix|tarif|coût|somme)|how much|"
        r"what (?:is the )?"
        r"(?:price|cost|fee|amount)|montant|tarif|prix|coût)\b",
        re.IGNORECASE,
    ),
    "date": re.compile(
        r"\b(?:quand|à quelle date|quelle date|depuis quand|à partir de quand|when|what date|"
        r"what year|en quelle année)\b",
        re.IGNORECASE,
    ),
    "count": re.compile(r"\b(?:combien de|how many|quel nombre|what number)\b", re.IGNORECASE),
}
_SAYS = {
    "duration": re.compile(
        r"\b\d+(?:[.,]\d+)?\s*(?:jours?|semaines?|mois|ans?|années?|heures?|minutes?|days?|"
        r"weeks?|months?|years?|hours?)\b|\b(?:un|une|deux|trois|quatre|cinq|six|dix|douze|"
        r"one|two|three|four|five|six|ten|twelve)\s+(?:jours?|semaines?|mois|ans|années|days|"
        r"weeks|months|years)\b",
        re.IGNORECASE,
    ),
    "amount": re.compile(
        r"\d[\d\s.,\u00a0\u202f]*\s*(?:€|euros?|EUR|%|\$|£)|[€$£]\s*\d", re.IGNORECASE
    ),
    "date": re.compile(
        r"\b\d{1,2}(?:er)?\s+(?:janvier|février|mars|avril|mai|juin|juillet|août|septembre|"
        r"octobre|novembre|décembre|january|february|march|april|may|june|july|august|september|"
        r"october|november|december)\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(?:1[89]|20)\d{2}\b",
        re.IGNORECASE,
    ),
    "count": re.compile(r"\b\d+\b"),
}


@dataclass(frozen=True)
class _Unit:
    passage: Passage
    position: int  # sentence index in the passage
    text: str
    terms: frozenset[int]
    fragment: bool


@dataclass(frozen=True)
class _Feature:
    """A window's evidence, before weighting."""

    text: str
    unit: _Unit
    coverage: float  # IDF-weighted share of the question's terms (heading terms count less)
    meaning: float  # cosine with the question (0 without an embedder)
    typed: float  # 1 when it holds the kind of figure the question asks for
    prior: float  # from its passage's retrieval rank
    penalty: float  # windows and fragments rank lower


_Evidence = tuple[list[_Feature], list[_Unit]] | None


@dataclass(frozen=True)
class _Candidate:
    passage: Passage
    position: int
    text: str
    score: float
    coverage: float
    meaning: float
    also: tuple[tuple[Passage, str], ...] = ()  # other passages that say it, in their words


def answer_units(p: Passage) -> list[tuple[str, bool]]:
    """The passage's whole sentences (heading line removed), each with whether it starts
    mid-sentence."""
    text = _without_heading(p.text, p.section_path)
    joined = _LINE_BREAK.sub(
        lambda m: m.group() if _ITEM.match(text[m.end() : m.end() + 8]) else " ", text
    )
    out = []
    for piece in _SPLIT.split(joined):
        s = " ".join(piece.split())
        if s:
            out.append((s, s[0].islower()))
    return out


def _without_heading(text: str, path: Sequence[str]) -> str:
    first, _, rest = text.partition("\n")
    if path and rest and first.strip() and first.strip().endswith(path[-1].strip()):
        return rest
    return text


def asks_for(question: str) -> str | None:
    """The kind of figure a question asks for, if any (the first that matches)."""
    return next((kind for kind, pattern in _ASKS.items() if pattern.search(question)), None)


class ExtractiveGenerator:
    """Stitches the passages' sentences that answer, each cited; no generative model needed.

    ``embedder``: scores units by meaning too (without one, by terms only). ``min_coverage``
    and ``min_similarity``: the evidence below which the answer is "not found" (either is
    enough). ``meaning_weight`` / ``type_weight``: how much meaning and the asked-for figure
    count beside the terms.
    """

    def __init__(
        self,
        *,
        max_sentences: int = 3,
        min_coverage: float = 0.5,
        max_chars: int = 900,
        embedder: Embedder | None = None,
        min_similarity: float = 1.0,
        meaning_weight: float = 0.0,
        type_weight: float = 0.0,
        memo: dict[tuple[str, tuple[str, ...]], _Evidence] | None = None,
    ) -> None:
        self.max_sentences = max_sentences
        self.min_coverage = min_coverage
        self.max_chars = max_chars
        self.embedder = embedder
        self.min_similarity = min_similarity
        self.meaning_weight = meaning_weight if embedder is not None else 0.0
        self.type_weight = type_weight
        self.memo = memo  # evidence per (question, passages): tuning reuses it across settings
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
            "min_similarity": self.min_similarity,
            "meaning_weight": self.meaning_weight,
            "type_weight": self.type_weight,
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

    def _units(self, passages: Sequence[Passage], language: str) -> list[_Unit]:
        units = []
        for p in passages:
            for i, (text, fragment) in enumerate(answer_units(p)):
                # A document's words addressed to an assistant are data, never an answer.
                if len(text.split()) >= _MIN_WORDS and not addressed_to_assistant(text):
                    terms = frozenset(self.sparse.term_ids(text, p.language or language))
                    units.append(_Unit(p, i, text, terms, fragment))
        return units

    def _pick(self, question: str, passages: Sequence[Passage], language: str) -> list[_Candidate]:
        found = self._features(question, passages, language)
        if found is None:
            return []
        features, units = found
        candidates = []
        for f in features:
            value = f.coverage + self.meaning_weight * f.meaning + self.type_weight * f.typed
            candidates.append(
                _Candidate(
                    f.unit.passage,
                    f.unit.position,
                    f.text,
                    value * f.prior * f.penalty,
                    f.coverage,
                    f.meaning,
                )
            )
        candidates.sort(key=lambda c: -c.score)
        top = candidates[0]
        if top.coverage < self.min_coverage and top.meaning < self.min_similarity:
            return []
        return self._select(candidates, units)

    def _features(self, question: str, passages: Sequence[Passage], language: str) -> _Evidence:
        """Every window's evidence, whatever the weights (memoised when a memo is given)."""
        key = (question, tuple(p.chunk_id for p in passages))
        if self.memo is not None and key in self.memo:
            return self.memo[key]
        query_terms = set(self.sparse.term_ids(question, language))
        units = self._units(passages, language) if query_terms and passages else []
        if not units:
            if self.memo is not None:
                self.memo[key] = None
            return None
        # IDF over the passages' sentences: a term in every sentence says nothing.
        n = len(units)
        idf = {t: math.log(1 + n / (1 + sum(t in u.terms for u in units))) for t in query_terms}
        total = sum(idf.values()) or 1.0
        headings = {
            p.n: set(self.sparse.term_ids(" ".join(p.section_path), p.language or language))
            for p in passages
        }
        wanted = asks_for(question)
        windows = self._windows(units)
        meanings = self._meanings(question, [w[0] for w in windows])
        features = []
        for (text, unit, terms, penalty), meaning in zip(windows, meanings, strict=True):
            covered = query_terms & terms
            heading_only = (query_terms & headings[unit.passage.n]) - covered
            coverage = (
                sum(idf[t] for t in covered) + _HEADING_WEIGHT * sum(idf[t] for t in heading_only)
            ) / total
            features.append(
                _Feature(
                    text,
                    unit,
                    coverage,
                    meaning,
                    1.0 if wanted is not None and _SAYS[wanted].search(text) else 0.0,
                    1.0 / (1 + 0.15 * (unit.passage.n - 1)),
                    penalty * (_FRAGMENT_PENALTY if unit.fragment else 1.0),
                )
            )
        result = (features, units)
        if self.memo is not None:
            self.memo[key] = result
        return result

    def _windows(self, units: list[_Unit]) -> list[tuple[str, _Unit, frozenset[int], float]]:
        """Each unit alone, and with the next sentence of its passage (an answer often
        continues its topic sentence)."""
        out = []
        for j, u in enumerate(units):
            out.append((u.text, u, u.terms, 1.0))
            if j + 1 < len(units):
                nxt = units[j + 1]
                if (
                    nxt.passage is u.passage
                    and nxt.position == u.position + 1
                    and len(u.text) + len(nxt.text) <= _WINDOW_CHARS
                ):
                    out.append((f"{u.text} {nxt.text}", u, u.terms | nxt.terms, _WINDOW_PENALTY))
        return out

    def _meanings(self, question: str, texts: list[str]) -> list[float]:
        """Cosine of the question and each text (zeros without an embedder)."""
        if self.embedder is None or (self.meaning_weight <= 0 and self.min_similarity >= 1):
            return [0.0] * len(texts)
        q = np.asarray(self.embedder.embed_queries([question])[0], dtype=np.float32)
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        return [float(v) for v in vectors @ q]

    def _select(self, candidates: list[_Candidate], units: list[_Unit]) -> list[_Candidate]:
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
            c = self._with_context(c, units, picked)
            picked.append(c)
            length += len(c.text)
        return sorted(picked, key=lambda c: (c.passage.n, c.position))

    @staticmethod
    def _with_context(c: _Candidate, units: list[_Unit], picked: list[_Candidate]) -> _Candidate:
        """A unit that leans on the sentence before it brings that sentence along (unless it is
        picked already)."""
        if not _LEANS.match(c.text) or c.position == 0:
            return c
        before = next(
            (u for u in units if u.passage is c.passage and u.position == c.position - 1), None
        )
        if before is None or any(before.text in q.text for q in picked):
            return c
        if len(before.text) + len(c.text) > _WINDOW_CHARS:
            return c
        return replace(c, text=f"{before.text} {c.text}", position=before.position)


def _same(a: str, b: str) -> bool:
    """One says what the other says (up to spacing and case)."""
    a, b = " ".join(a.split()).lower(), " ".join(b.split()).lower()
    return a in b or b in a
