"""Sentences of a chunk's text: what sentence vectors pool and what answers quote."""

from __future__ import annotations

import re

# Not after a lone list number ("1. first").
_SENTENCE = re.compile(r"(?<!\b\d\.)(?<=[.!?;])\s+|\n{2,}|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")
_ITEM = re.compile(r"\s*(?:[-*•]|\d+[.)])\s")

Span = tuple[int, int]


def sentences(text: str) -> list[str]:
    """Sentences of a passage: single line breaks (PDF layout) are joined, paragraph breaks,
    list items and sentence punctuation split."""
    joined = _joined(text)
    return [joined[start:end] for start, end in _spans(joined)]


def sentence_spans(text: str) -> list[Span]:
    """Where each of ``sentences(text)`` lies in ``text``: ``(start, end)`` character offsets
    (joining line breaks keeps every offset)."""
    return _spans(_joined(text))


def _joined(text: str) -> str:
    return _LINE_BREAK.sub(lambda m: m.group() if _starts_item(text, m.end()) else " ", text)


def _spans(joined: str) -> list[Span]:
    out: list[Span] = []
    start = 0
    for end, after in [(m.start(), m.end()) for m in _SENTENCE.finditer(joined)] + [
        (len(joined), len(joined))
    ]:
        piece = joined[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((start + lead, start + len(piece.rstrip())))
        start = after
    return out


def _starts_item(text: str, pos: int) -> bool:
    return bool(_ITEM.match(text[pos : pos + 8]))
