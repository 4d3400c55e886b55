"""Citations checked after generation: a marker [n] survives only if passage n was retrieved;
each valid citation carries the passage's location and the span that supports the sentence."""

from __future__ import annotations

import re
from collections.abc import Sequence

from retrieval.types import Citation, Passage
from textmodels.sentences import sentences

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_LEADING_MARKERS = re.compile(r"(?:\s*\[\d{1,3}\])+")
_WORD = re.compile(r"\w+")
QUOTE_MAX = 300


def validate(text: str, passages: Sequence[Passage]) -> tuple[str, list[Citation]]:
    """Drop markers that name no retrieved passage; return the cleaned text and one citation per
    cited passage, in order of first citation, quoting the passage sentence that shares most
    words with the sentence citing it."""
    by_n = {p.n: p for p in passages}
    cited: dict[int, Citation] = {}

    def keep(match: re.Match[str]) -> str:
        numbers = [int(x) for x in re.split(r"\s*,\s*", match.group(1))]
        valid = [n for n in numbers if n in by_n]
        return "".join(f"[{n}]" for n in valid)

    cleaned = _MARKER.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    previous = ""
    for sentence in sentences(cleaned):
        # "One. [1] Two. [2]" splits as "One.", "[1] Two.", "[2]": markers that lead a
        # sentence cite the sentence before them.
        lead = _LEADING_MARKERS.match(sentence)
        for match in _MARKER.finditer(sentence):
            n = int(match.group(1))
            claim = previous if lead and match.end() <= lead.end() and previous else sentence
            if n not in cited:
                cited[n] = citation(by_n[n], quote_for(claim, by_n[n].text))
        if _WORD.search(_MARKER.sub("", sentence)):
            previous = sentence
    return cleaned.strip(), list(cited.values())


def citation(p: Passage, quote: str) -> Citation:
    return Citation(
        n=p.n,
        chunk_id=p.chunk_id,
        document_id=p.document_id,
        title=p.title,
        version=p.version,
        page=p.page_start,
        quote=quote,
    )


def quote_for(claim: str, passage: str) -> str:
    """The passage sentence sharing most words with ``claim`` (the passage start if none)."""
    claim_words = {w.lower() for w in _WORD.findall(_MARKER.sub("", claim)) if len(w) > 2}
    best, best_score = "", 0
    for sentence in sentences(passage):
        score = len(claim_words & {w.lower() for w in _WORD.findall(sentence)})
        if score > best_score:
            best, best_score = sentence, score
    return (best or passage)[:QUOTE_MAX].strip()
