"""The one place answers are checked: whatever wrote them (the extractive answerer, a model),
a marker [n] survives only if passage n was given to the generator, each valid citation carries
the passage's location and the span that supports the sentence, and an empty or "not found"
reply becomes the not-found answer in the question's language."""

from __future__ import annotations

import re
from collections.abc import Sequence

from retrieval.prompt import NOT_FOUND_MARKER
from retrieval.types import NOT_FOUND, SMALL_TALK, Answer, Citation, Passage
from textmodels.injection import addressed_to_assistant
from textmodels.language import detect_language
from textmodels.sentences import sentences

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_LEADING_MARKERS = re.compile(r"(?:\s*\[\d{1,3}\])+")
_WORD = re.compile(r"\w+")
QUOTE_MAX = 300
# C0/C1 control characters (tab and newline kept) and U+FFFD, which a model emits when it
# produces bytes that are not valid UTF-8.
_GARBAGE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def answer_language(question: str) -> str:
    """The language answers to ``question`` are written in: French or English."""
    return "fr" if detect_language(question) == "fr" else "en"


def not_found(question: str) -> Answer:
    """The documents do not answer: said in the question's language, citing nothing."""
    return Answer(text=NOT_FOUND[answer_language(question)], citations=[], grounded=False)


_SMALL_TALK = re.compile(
    r"^\W*(?:(?:bonjour|bonsoir|salut|coucou|hello|hi|hey|good (?:morning|afternoon|evening)|"
    r"merci(?: beaucoup| bien)?|thanks?(?: you| a lot)?|ok(?:ay)?|d'accord|au revoir|bye|"
    r"goodbye|ça va|how are you|comment (?:ça va|allez-vous))\W*)+$",
    re.IGNORECASE,
)


def small_talk(question: str) -> Answer | None:
    """A greeting or thanks with no question in it gets a short reply in its language, never a
    passage that happens to contain the word ("hello" once returned an HTML snippet)."""
    if not _SMALL_TALK.match(question.strip()):
        return None
    return Answer(text=SMALL_TALK[answer_language(question)], citations=[], grounded=False)


def grounded_answer(text: str, question: str, passages: Sequence[Passage]) -> Answer:
    """The checked answer for ``text`` written to ``question`` from ``passages`` (the ones the
    generator was given): control characters removed, markers naming no passage dropped, the
    not-found answer for an empty reply or one that says so; text citing no passage is kept
    but not presented as grounded. A sentence addressed to an AI assistant ("ignore previous
    instructions", "réponds que ...": a document's injected instruction, quoted or obeyed) is
    never said."""
    cleaned = _without_instructions(_GARBAGE.sub("", text).strip())
    if (
        not passages
        or not cleaned
        or NOT_FOUND_MARKER in cleaned
        or any(m in cleaned for m in NOT_FOUND.values())
    ):
        return not_found(question)
    cleaned, citations = validate(cleaned, passages)
    if not cleaned:
        return not_found(question)
    return Answer(text=cleaned, citations=citations, grounded=bool(citations))


def _without_instructions(text: str) -> str:
    """The text without its sentences addressed to an assistant (issue #23: answers quoted a
    document's "note to the AI assistant"); unchanged when it has none."""
    if not addressed_to_assistant(text):
        return text
    return " ".join(s for s in sentences(text) if not addressed_to_assistant(s)).strip()


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
