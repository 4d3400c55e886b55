"""Answer correctness without a judge model: is the reference answer's content in the answer?

Two parts, computed on the reference answer and the answer given:

* **content words**: the share of the reference's content words (stopwords dropped, stemmed and
  accent-folded by the sparse encoder's analyser, so "délais" meets "délai") that the answer
  contains;
* **numbers and dates**: every number of the reference (``3``, ``1 234,56``, ``15 %``) and every
  date must appear in the answer exactly (as a value: ``1 234,56`` and ``1234.56`` are the same
  number, ``12/03/2024`` and ``12 mars 2024`` the same date); the share found.

A question's correctness is the content share, or the mean of both when the reference holds
numbers or dates (a duration or an amount is right only when its figure is). An answer that
refuses scores 0 on an answerable question. The metric reads no model and is the same on every
machine, so releases compare on it question by question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from textmodels.entities import RuleBasedEntityExtractor
from textmodels.language import detect_language
from textmodels.sparse import SparseEncoder

# 1 234,56 | 1,234.56 | 1234 | 3,5 | 15 — the figure of an amount, duration or rate.
_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:[ \u00a0\u202f.,]\d{3})*(?:[.,]\d+)?(?![\w])|\d+")
_encoder = SparseEncoder()
_extractor = RuleBasedEntityExtractor()


@dataclass(frozen=True)
class Correctness:
    score: float  # 0..1
    content: float  # share of the reference's content words found
    figures: float | None  # share of the reference's numbers and dates found (None: it has none)


def _value(raw: str, french: bool) -> str | None:
    """A number's value as a canonical string (``1 234,56`` → ``1234.56``)."""
    text = raw.replace("\u00a0", " ").replace("\u202f", " ")
    if french:
        text = text.replace(" ", "").replace(".", "").replace(",", ".")
    else:
        text = text.replace(" ", "").replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return format(value.normalize(), "f")


def figures(text: str, language: str) -> set[str]:
    """The numbers and dates a text states, as values."""
    french = language == "fr"
    found: set[str] = set()
    dates = [e for e in _extractor.extract(text, language) if e.kind == "date"]
    found.update(e.key for e in dates)
    # Digits inside a recognised date are the date, not numbers of their own.
    masked = text
    for e in dates:
        masked = masked.replace(e.name, " ")
    for m in _NUMBER.finditer(masked):
        value = _value(m.group(), french)
        if value is not None:
            found.add(value)
    return found


_DIGITS = re.compile(r"\S*\d\S*")


def content_terms(text: str, language: str) -> set[int]:
    """Stemmed, accent-folded words without stopwords; figures are scored apart."""
    return set(_encoder.term_ids(_DIGITS.sub(" ", text), language))


def answer_correctness(answer: str, reference: str, language: str | None = None) -> Correctness:
    """How much of ``reference`` the ``answer`` states (see the module's docstring)."""
    lang = language or ("fr" if detect_language(reference) == "fr" else "en")
    wanted = content_terms(reference, lang)
    got = content_terms(answer, lang)
    content = len(wanted & got) / len(wanted) if wanted else 1.0
    needed = figures(reference, lang)
    if not needed:
        return Correctness(score=content, content=content, figures=None)
    stated = figures(answer, lang)
    share = len(needed & stated) / len(needed)
    return Correctness(score=(content + share) / 2, content=content, figures=share)
