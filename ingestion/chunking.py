"""Structure-aware chunking: sections first, then sentences, then words, measured in model tokens.

A chunk never spans two sections, except that sections smaller than ``min_section_tokens`` merge
with the following sibling (same parent) while the result fits one chunk; a trailing small section
joins the previous sibling instead. Inside a section, whole sentences are packed up to the budget,
and the next chunk starts with the previous one's last sentences (``overlap_tokens``). A sentence
longer than the budget is cut between words, a word longer than the budget between characters.
Tables are rendered one row per line (cells joined by `` | ``) and kept whole when they fit; a
larger table is cut between rows, each part starting with the header row again.

Every chunk's text starts with its section path as one line (``Chapitre 2 > Tarifs``): the
embedding and BM25 of a chunk then know what it is about even when the body never names it, which
helps retrieval on sectioned documents. The line is counted in the budget. Merged small sections
keep their own titles as lines of the body.

Tokens are counted once per sentence (per word for overlong sentences) and summed, so chunking is
linear in the document: a 200-page document takes ~0.1 s with a whitespace counter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingestion.parsing import Element
from textmodels.language import detect_language

CHUNKER_NAME = "structure-aware"
# Bump when the chunks produced from the same elements change: chunk ids derive from it.
CHUNKER_VERSION = "1"

_PATH_SEPARATOR = " > "
_CELL_SEPARATOR = " | "
# A sentence ends at . ! ? or … (optionally followed by a closing quote or bracket) and a space;
# a line break always ends one. Two fixed-width look-behinds, as `re` allows no variable width.
_BOUNDARY = re.compile(r"\s*\n\s*|(?:(?<=[.!?…])|(?<=[.!?…][\"'\u00bb\u201d\u2019)\]]))\s+")
# The section path may take at most this share of the budget; outer titles are dropped first.
_MAX_HEADING_SHARE = 4
_LANGUAGE_SAMPLE_CHARS = 20_000


class ChunkerConfig(BaseModel):
    """Chunker parameters; with ``name`` and ``version`` they determine the chunks exactly.

    ``max_tokens`` bounds each chunk's text including its section-path line (keep it within the
    embedding model's input: all-MiniLM-L6-v2 reads 256 tokens including 2 special ones).
    ``overlap_tokens`` is the most that a chunk repeats from the end of the previous one in the
    same section (whole sentences only). Sections under ``min_section_tokens`` may merge.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str] = CHUNKER_NAME
    version: ClassVar[str] = CHUNKER_VERSION

    max_tokens: int = Field(default=256, gt=0)
    overlap_tokens: int = Field(default=32, ge=0)
    min_section_tokens: int = Field(default=64, ge=0)

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkerConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError("overlap_tokens must be smaller than max_tokens")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Canonical form for the release config (and the chunk-id hash)."""
        return {"name": self.name, "version": self.version, **self.model_dump()}


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk before it has ids or vectors.

    ``ordinal`` is its 0-based position in the document; ``page_start``/``page_end`` the pages
    its text comes from (``None`` for formats without pages); ``language`` ``"fr"``, ``"en"`` or
    ``"und"``; ``token_count`` the tokens of ``text`` by the ``count_tokens`` given to
    :func:`chunk` (summed per piece, which is exact for tokenisers that split at whitespace
    first, as WordPiece does).
    """

    ordinal: int
    text: str
    section_path: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    language: str
    token_count: int


@dataclass(frozen=True, slots=True)
class _Piece:
    """An unbreakable run of text: a sentence, a word group, a table or table part, a title.

    ``sep`` joins it to the piece before (a line break starts a new element or line).
    ``overlap`` says whether it may be repeated at the start of the next chunk (sentences only).
    """

    text: str
    tokens: int
    page: int | None
    sep: str
    overlap: bool = True


@dataclass(slots=True)
class _Section:
    path: tuple[str, ...]
    pieces: list[_Piece] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(piece.tokens for piece in self.pieces)


def chunk(
    elements: Sequence[Element], *, config: ChunkerConfig, count_tokens: Callable[[str], int]
) -> list[ChunkDraft]:
    """Cut parsed elements into chunks of at most ``config.max_tokens`` tokens.

    ``count_tokens`` is the embedding model's tokenizer without special tokens, e.g.
    ``lambda s: len(tokenizer(s, add_special_tokens=False)["input_ids"])``; it is called once per
    sentence and once per section path, never on growing concatenations. Deterministic: the same
    elements, config and counter give the same chunks. Chunk language is detected per chunk with
    the document's language as the tie-breaker.
    """
    chunker = _Chunker(config, count_tokens)
    sections = chunker.sections(elements)
    sample = "\n".join(_head(elements, _LANGUAGE_SAMPLE_CHARS))
    document_language = detect_language(sample)
    default: Literal["fr", "en"] = "fr" if document_language == "fr" else "en"
    drafts: list[ChunkDraft] = []
    for path, pieces in chunker.units(sections):
        heading = chunker.heading(path)
        heading_tokens = chunker.heading_tokens(path)
        for packed in chunker.pack(pieces, config.max_tokens - heading_tokens):
            body = _join(packed)
            pages = [piece.page for piece in packed if piece.page is not None]
            drafts.append(
                ChunkDraft(
                    ordinal=len(drafts),
                    text=f"{heading}\n{body}" if heading else body,
                    section_path=path,
                    page_start=min(pages, default=None),
                    page_end=max(pages, default=None),
                    language=detect_language(body, default=default),
                    token_count=heading_tokens + sum(piece.tokens for piece in packed),
                )
            )
    return drafts


class _Chunker:
    def __init__(self, config: ChunkerConfig, count_tokens: Callable[[str], int]) -> None:
        self.config = config
        self.count = count_tokens
        self._headings: dict[tuple[str, ...], tuple[str, int]] = {}
        self._title_lines: dict[str, int] = {}

    def heading(self, path: tuple[str, ...]) -> str:
        return self._heading(path)[0]

    def heading_tokens(self, path: tuple[str, ...]) -> int:
        return self._heading(path)[1]

    def _heading(self, path: tuple[str, ...]) -> tuple[str, int]:
        """The path line and its tokens; outer titles are dropped while it exceeds its share."""
        if path not in self._headings:
            limit = self.config.max_tokens // _MAX_HEADING_SHARE
            result = ("", 0)
            for start in range(len(path)):
                line = _PATH_SEPARATOR.join(path[start:])
                tokens = self.count(line)
                if tokens <= limit:
                    result = (line, tokens)
                    break
            self._headings[path] = result
        return self._headings[path]

    def budget(self, path: tuple[str, ...]) -> int:
        return self.config.max_tokens - self.heading_tokens(path)

    def sections(self, elements: Sequence[Element]) -> list[_Section]:
        """Runs of consecutive elements with the same section path, as pieces that fit the
        section's budget. The Title opening a section is not body: it is in the path line."""
        sections: list[_Section] = []
        for element in elements:
            if not sections or sections[-1].path != element.section_path:
                sections.append(_Section(element.section_path))
                if (
                    element.kind == "Title"
                    and element.section_path
                    and element.text == element.section_path[-1]
                ):
                    continue
            section = sections[-1]
            section.pieces.extend(self._pieces(element, self.budget(section.path)))
        return sections

    def units(self, sections: list[_Section]) -> Iterator[tuple[tuple[str, ...], list[_Piece]]]:
        """Sections to chunk, small siblings merged (see the module docstring)."""
        minimum = self.config.min_section_tokens
        units: list[tuple[tuple[str, ...], list[_Section]]] = []
        i = 0
        while i < len(sections):
            group = [sections[i]]
            i += 1
            if not group[0].pieces and i < len(sections) and _is_ancestor(group[0], sections[i]):
                continue  # a heading with no text of its own: its title is in its children's path
            while (
                _tokens(group) < minimum
                and i < len(sections)
                and _siblings(group[0], sections[i])
                and self._fits([*group, sections[i]])
            ):
                group.append(sections[i])
                i += 1
            if (
                _tokens(group) < minimum
                and units
                and _siblings(units[-1][1][0], group[0])
                and self._fits([*units[-1][1], *group])
            ):
                previous = units.pop()[1]
                group = [*previous, *group]
            units.append((_common_path(group), group))
        for path, group in units:
            pieces = self._merged_pieces(path, group)
            if not pieces and path:  # a lone heading with nothing under it: keep its words
                path, pieces = path[:-1], [self._title_piece(path[-1:], None)]
            yield path, pieces

    def _fits(self, group: list[_Section]) -> bool:
        path = _common_path(group)
        return self._merged_tokens(path, group) <= self.budget(path)

    def _merged_tokens(self, path: tuple[str, ...], group: list[_Section]) -> int:
        return sum(piece.tokens for piece in self._merged_pieces(path, group))

    def _merged_pieces(self, path: tuple[str, ...], group: list[_Section]) -> list[_Piece]:
        """The group's pieces, each section's titles below ``path`` as a line before its text."""
        if len(group) == 1:
            return group[0].pieces
        pieces: list[_Piece] = []
        for section in group:
            titles = section.path[len(path) :]
            if titles:
                page = section.pieces[0].page if section.pieces else None
                pieces.append(self._title_piece(titles, page))
            pieces.extend(section.pieces)
        return pieces

    def _title_piece(self, titles: tuple[str, ...], page: int | None) -> _Piece:
        line = _PATH_SEPARATOR.join(titles)
        if line not in self._title_lines:
            self._title_lines[line] = self.count(line)
        return _Piece(line, self._title_lines[line], page, "\n", overlap=False)

    def pack(self, pieces: list[_Piece], budget: int) -> Iterator[list[_Piece]]:
        """Greedy packing of whole pieces up to ``budget``; each chunk after the first starts
        with the previous chunk's trailing sentences worth at most ``overlap_tokens``."""
        current: list[_Piece] = []
        used = 0
        fresh = False  # whether `current` holds more than overlap from the previous chunk
        for piece in pieces:
            if fresh and used + piece.tokens > budget:
                yield current
                current = self._overlap(current)
                used = sum(p.tokens for p in current)
                fresh = False
            if used + piece.tokens > budget:
                current, used = [], 0
            current.append(piece)
            used += piece.tokens
            fresh = True
        if fresh:
            yield current

    def _overlap(self, pieces: list[_Piece]) -> list[_Piece]:
        tail: list[_Piece] = []
        used = 0
        for piece in reversed(pieces):
            if not piece.overlap or used + piece.tokens > self.config.overlap_tokens:
                break
            tail.append(piece)
            used += piece.tokens
        return tail[::-1]

    def _pieces(self, element: Element, budget: int) -> list[_Piece]:
        if element.table_html:
            rows = _table_rows(element.table_html)
            if rows:
                return self._table_pieces(rows, element.page, budget)
        return self._text_pieces(element.text, element.page, budget, "\n")

    def _text_pieces(self, text: str, page: int | None, budget: int, sep: str) -> list[_Piece]:
        """Sentences of ``text``; one over budget becomes word groups of ~overlap size (so the
        overlap can still take whole groups)."""
        pieces: list[_Piece] = []
        for sentence, sentence_sep in _sentences(text, sep):
            tokens = self.count(sentence)
            if tokens <= budget:
                pieces.append(_Piece(sentence, tokens, page, sentence_sep))
            else:
                step = self.config.overlap_tokens or budget
                pieces.extend(self._word_groups(sentence, page, budget, step, sentence_sep))
        return pieces

    def _word_groups(
        self, sentence: str, page: int | None, budget: int, step: int, sep: str
    ) -> Iterator[_Piece]:
        words: list[str] = []
        used = 0
        for word in sentence.split():
            tokens = self.count(word)
            if words and used + tokens > step:
                yield _Piece(" ".join(words), used, page, sep)
                words, used, sep = [], 0, " "
            if tokens > budget:
                for part in self._cut_word(word, tokens, budget):
                    yield _Piece(part, self.count(part), page, sep)
                    sep = " "
                continue
            words.append(word)
            used += tokens
        if words:
            yield _Piece(" ".join(words), used, page, sep)

    def _cut_word(self, word: str, tokens: int, budget: int) -> Iterator[str]:
        """Slices of a word too long for any chunk (a URL, base64), each within the budget."""
        size = max(1, len(word) * budget // (tokens * 2))
        for start in range(0, len(word), size):
            part = word[start : start + size]
            part_tokens = self.count(part)
            if part_tokens > budget and len(part) > 1:
                yield from self._cut_word(part, part_tokens, budget)
            else:
                yield part

    def _table_pieces(self, rows: list[str], page: int | None, budget: int) -> list[_Piece]:
        """The table whole if it fits, else runs of rows under a repeated header row."""
        counts = [self.count(row) for row in rows]
        if sum(counts) <= budget:
            return [_Piece("\n".join(rows), sum(counts), page, "\n", overlap=False)]
        header, header_tokens = rows[0], counts[0]
        if header_tokens > budget // 2:  # a header that large would leave no room for rows
            header, header_tokens = "", 0
        pieces: list[_Piece] = []
        group: list[str] = []
        used = header_tokens
        skip = 1 if header else 0
        for row, tokens in zip(rows[skip:], counts[skip:], strict=True):
            if group and used + tokens > budget:
                pieces.append(self._table_part(header, group, used, page))
                group, used = [], header_tokens
            if header_tokens + tokens > budget:  # one row alone too large: cut it as text
                pieces.extend(self._text_pieces(row, page, budget, "\n"))
                continue
            group.append(row)
            used += tokens
        if group:
            pieces.append(self._table_part(header, group, used, page))
        return pieces

    @staticmethod
    def _table_part(header: str, rows: list[str], tokens: int, page: int | None) -> _Piece:
        text = "\n".join([header, *rows] if header else rows)
        return _Piece(text, tokens, page, "\n", overlap=False)


def _sentences(text: str, first_sep: str) -> Iterator[tuple[str, str]]:
    """``(sentence, separator before it)``; the separator is a line break where the text had one."""
    sep = first_sep
    start = 0
    for match in _BOUNDARY.finditer(text):
        sentence = text[start : match.start()].strip()
        if sentence:
            yield sentence, sep
            sep = "\n" if "\n" in match.group() else " "
        elif "\n" in match.group():
            sep = "\n"
        start = match.end()
    sentence = text[start:].strip()
    if sentence:
        yield sentence, sep


class _TableRows(HTMLParser):
    """Rows of an HTML table as lists of cell texts (unstructured's ``text_as_html``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th"):  # <td/>: an empty cell keeps the columns aligned
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append("")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _table_rows(html: str) -> list[str]:
    parser = _TableRows()
    parser.feed(html)
    parser.close()
    return [_CELL_SEPARATOR.join(cells) for cells in parser.rows if any(cells)]


def _join(pieces: list[_Piece]) -> str:
    parts = [pieces[0].text]
    for piece in pieces[1:]:
        parts.append(piece.sep)
        parts.append(piece.text)
    return "".join(parts)


def _tokens(group: list[_Section]) -> int:
    return sum(section.tokens for section in group)


def _siblings(a: _Section, b: _Section) -> bool:
    """Same parent section; text before the first title (empty path) counts as top level."""
    return a.path[:-1] == b.path[:-1]


def _is_ancestor(a: _Section, b: _Section) -> bool:
    return len(b.path) > len(a.path) and b.path[: len(a.path)] == a.path


def _common_path(group: list[_Section]) -> tuple[str, ...]:
    path = group[0].path
    for section in group[1:]:
        size = 0
        while size < min(len(path), len(section.path)) and path[size] == section.path[size]:
            size += 1
        path = path[:size]
    return path


def _head(elements: Sequence[Element], chars: int) -> Iterator[str]:
    """Element texts from the start of the document up to about ``chars`` characters."""
    total = 0
    for element in elements:
        if total >= chars:
            return
        total += len(element.text)
        yield element.text
