"""What retrieval returns and generation consumes: passages, citations, answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, numbered ``n`` (1-based) as the answer cites it: ``[n]``."""

    n: int
    chunk_id: str
    document_id: str
    version: int
    title: str
    text: str
    score: float
    page_start: int | None = None
    page_end: int | None = None
    section_path: tuple[str, ...] = ()
    collection: str = ""
    language: str = ""
    # The chunk addresses an AI assistant (ingestion.sanitize): shown, never said as an answer.
    suspicious: bool = False


@dataclass(frozen=True)
class Citation:
    """One source of an answer: which passage, where it is, and the span quoted from it."""

    n: int
    chunk_id: str
    document_id: str
    title: str
    version: int
    page: int | None
    quote: str


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Answer:
    """An answer and its sources. ``grounded`` is False when the passages do not answer."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    grounded: bool = True


NOT_FOUND = {
    "en": "Not found in the documents: the passages retrieved do not answer this question.",
    "fr": "Introuvable dans les documents : les passages trouvés ne répondent pas à la question.",
}

# The reply to a greeting or thanks with no question in it, in the language it was said in.
SMALL_TALK = {
    "en": "Hello! Ask me a question about your documents: I answer from them and cite the "
    "passages I used.",
    "fr": "Bonjour ! Posez-moi une question sur vos documents : je réponds à partir d'eux et "
    "je cite les passages utilisés.",
}
