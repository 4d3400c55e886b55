"""Turn an uploaded document's bytes into an ordered list of text :class:`Element` s.

unstructured does the format work (``strategy="fast"``: no layout model, no OCR). This module
wraps it with the checks it lacks, because unstructured fails *silently* on several bad inputs
(it returns ``[]`` for encrypted, truncated or garbage PDFs) and partitions a text file that is
labelled DOCX as text:

* PDF: header, readability and encryption checked with pypdf first; pages for which unstructured
  returns no text (``is_pdf_too_complex`` skips pages with ~10k graphics operators) are re-read
  with pypdf so a document never "succeeds" with text missing.
* ZIP-based formats (DOCX, PPTX, XLSX, ODT): zip directory checked for corruption, missing main
  part and expansion (zip bombs) before any XML is inflated.
* Text formats: decoded here (UTF-8, else Windows-1252) and sized before parsing, so a
  10,000-page text file is refused in milliseconds.

Every bad document raises :class:`core.errors.IngestionError` with a cause a user can act on.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pypdf
from pypdf import PasswordType

from core.errors import IngestionError, UnsupportedMediaType
from core.media import CSV, DOCX, EML, HTML, MARKDOWN, ODT, PDF, PPTX, SUPPORTED, TEXT, XLSX

# Telemetry and download switches must be in the environment before unstructured (and the
# huggingface libraries it pulls in) is first imported: unset, unstructured runs `nvidia-smi` and
# sends a usage ping at import and on every partition call, and prints a notice. Besides
# textmodels.embedding (OpenMP waiting), the one place outside core.settings that touches
# os.environ, and only with setdefault so an operator's explicit value wins.
for _name, _value in (
    ("DO_NOT_TRACK", "1"),
    ("SCARF_NO_ANALYTICS", "true"),
    ("UNSTRUCTURED_DISABLE_NOTICE", "1"),
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
):
    os.environ.setdefault(_name, _value)

_log = logging.getLogger(__name__)

# The part every valid archive of each ZIP-based format contains.
_ZIP_MAIN_PART = {
    DOCX: "word/document.xml",
    PPTX: "ppt/presentation.xml",
    XLSX: "xl/workbook.xml",
    ODT: "content.xml",
}
_PLAIN_TEXT_TYPES = frozenset({TEXT, MARKDOWN, CSV})
_DECODED_TYPES = _PLAIN_TEXT_TYPES | {HTML}

# Page estimate for formats without pages: ~500 words of ~6 characters.
CHARS_PER_PAGE = 3000
# An archive that inflates to under 1 MB cannot hurt, whatever its ratio (an XLSX of zeros
# legitimately compresses > 100:1).
_RATIO_FLOOR_BYTES = 1_000_000
# Legacy OLE2 compound file: what a password-protected DOCX/PPTX/XLSX actually is on disk.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_SENTENCE_END = re.compile(r"[.!?,;]\s*$")
# A PDF text line shorter than this share of the page's longest line ends a paragraph.
_SHORT_LINE_SHARE = 0.6
_MAX_TITLE_WORDS = 12


@dataclass(frozen=True, slots=True)
class Element:
    """One block of a parsed document, in reading order.

    ``kind`` is unstructured's category (``Title``, ``NarrativeText``, ``ListItem``, ``Table``,
    ``UncategorizedText``, ...). ``page`` is 1-based (the slide for PPTX, the sheet for XLSX) or
    ``None`` where the format has no pages. ``section_path`` lists the titles above the element,
    outermost first; a ``Title`` that opens a section ends its own path with its text.
    ``table_html`` holds a ``Table`` whole as HTML (rows and cells kept), else ``None``.
    """

    text: str
    kind: str
    page: int | None
    section_path: tuple[str, ...]
    table_html: str | None = None


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on what one document may expand to; exceeding any fails the document.

    ``max_pages`` counts real pages (PDF, PPTX slides, DOCX page breaks) or, for text formats,
    characters / 3000. ``max_archive_bytes`` and ``max_archive_ratio`` bound what a ZIP-based
    document declares it inflates to, checked before it is inflated.
    """

    max_pages: int = 2000
    max_chars: int = 20_000_000
    max_archive_bytes: int = 200_000_000
    max_archive_ratio: float = 100.0


@dataclass(frozen=True, slots=True)
class _Block:
    """An element before section paths are known; ``depth`` is the heading level if known."""

    text: str
    kind: str
    page: int | None
    depth: int | None
    table_html: str | None = None


def parse(
    data: bytes, *, media_type: str, filename: str, limits: ParseLimits | None = None
) -> list[Element]:
    """Parse ``data`` as ``media_type`` into elements with pages and section paths.

    ``media_type`` is trusted (the API sniffs content before this); ``filename`` is used only in
    logs, so its extension never changes how the bytes are read. Raises
    :class:`UnsupportedMediaType` for a type not in :data:`SUPPORTED` and
    :class:`IngestionError` for a document that is corrupt, encrypted, a zip bomb, larger than
    ``limits`` or without extractable text. Never returns an empty list.
    """
    limits = limits or ParseLimits()
    mime, _, params = media_type.partition(";")
    mime = mime.strip().lower()
    label = SUPPORTED.get(mime)
    if label is None:
        raise UnsupportedMediaType(f"unsupported media type {media_type!r}")
    if not data:
        raise IngestionError(f"empty {label} file")

    if mime == PDF:
        blocks = _parse_pdf(data, filename, limits)
    elif mime in _ZIP_MAIN_PART:
        _check_archive(data, mime, limits)
        blocks = _partition(data, mime)
    elif mime in _DECODED_TYPES:
        text = _decode(data, _charset(params))
        if mime in _PLAIN_TEXT_TYPES:
            _check_text_size(len(text), limits)
        blocks = _partition(text.encode("utf-8"), mime, encoding="utf-8")
    else:
        blocks = _partition(data, mime)

    _check_parsed_size(blocks, limits)
    if not any(block.text.strip() for block in blocks):
        raise IngestionError("no extractable text; OCR not enabled")
    return _with_section_paths(blocks)


def _parse_pdf(data: bytes, filename: str, limits: ParseLimits) -> list[_Block]:
    reader = _open_pdf(data)
    page_count = len(reader.pages)
    if page_count > limits.max_pages:
        raise IngestionError(f"too large: {page_count} pages > max_pages={limits.max_pages}")
    blocks = _partition(data, PDF)
    pages_with_text = {block.page for block in blocks if block.text.strip()}
    missing = [n for n in range(1, page_count + 1) if n not in pages_with_text]
    if not missing:
        return blocks
    recovered = {n: _pypdf_page_blocks(reader, n) for n in missing}
    recovered = {n: page_blocks for n, page_blocks in recovered.items() if page_blocks}
    if not recovered:
        return blocks
    _log.warning(
        "unstructured returned no text for PDF pages; used pypdf text",
        extra={"document_filename": filename, "pages": sorted(recovered)},
    )
    by_page: dict[int | None, list[_Block]] = {}
    for block in blocks:
        by_page.setdefault(block.page, []).append(block)
    merged: list[_Block] = []
    for page in range(1, page_count + 1):
        merged.extend(recovered.get(page, by_page.get(page, ())))
    return merged


def _open_pdf(data: bytes) -> pypdf.PdfReader:
    """Open with pypdf, turning unreadable and password-protected files into IngestionError."""
    if b"%PDF-" not in data[:1024]:
        raise IngestionError("corrupt or unreadable PDF: no %PDF header")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise IngestionError("encrypted PDF: a password is required")
        _ = len(reader.pages)  # forces the page tree to be read
    except IngestionError:
        raise
    except Exception as exc:  # pypdf raises a dozen unrelated types on damaged files
        raise IngestionError(f"corrupt or unreadable PDF: {exc}") from exc
    return reader


def _pypdf_page_blocks(reader: pypdf.PdfReader, page: int) -> list[_Block]:
    try:
        text = reader.pages[page - 1].extract_text()
    except Exception as exc:  # one unreadable page should not hide the others' text
        _log.warning("pypdf could not read PDF page", extra={"page": page, "error": str(exc)})
        return []
    return [
        _Block(text=paragraph, kind="UncategorizedText", page=page, depth=None)
        for paragraph in _reflow(text)
    ]


def _reflow(text: str) -> list[str]:
    """pypdf's layout lines as paragraphs: a line much shorter than the longest line of the page
    (a heading, a paragraph's last line) ends a paragraph; other lines join with a space, or
    with nothing after a hyphen ("self-" + "locking")."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    full = max(len(line) for line in lines)
    paragraphs: list[str] = []
    current = ""
    for line in lines:
        current = (
            f"{current}{line}" if current.endswith("-") or not current else f"{current} {line}"
        )
        if len(line) < _SHORT_LINE_SHARE * full:
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return paragraphs


def _check_archive(data: bytes, mime: str, limits: ParseLimits) -> None:
    """Refuse corrupt ZIP-based documents and zip bombs using only the zip directory."""
    label = SUPPORTED[mime]
    if data.startswith(_OLE_MAGIC):
        raise IngestionError(f"encrypted {label}: a password is required")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise IngestionError(f"corrupt or unreadable {label}: not a valid zip archive") from exc
    # python-docx/pptx/openpyxl read through Python's zipfile, which never inflates an entry
    # past its declared size, so these sizes bound what they allocate. pandoc (ODT) unzips
    # with its own library, which this check does not bind if the directory lies.
    expanded = sum(info.file_size for info in infos)
    ratio = expanded / len(data)
    if expanded > limits.max_archive_bytes or (
        expanded > _RATIO_FLOOR_BYTES and ratio > limits.max_archive_ratio
    ):
        raise IngestionError(
            f"{label} archive expands too much (possible zip bomb): {expanded} bytes, "
            f"ratio {ratio:.0f} (limits: {limits.max_archive_bytes} bytes, "
            f"ratio {limits.max_archive_ratio:.0f})"
        )
    names = {info.filename for info in infos}
    if _ZIP_MAIN_PART[mime] not in names:
        raise IngestionError(
            f"corrupt or unreadable {label}: {_ZIP_MAIN_PART[mime]} missing from the archive"
        )
    if mime == PPTX:
        slides = sum(1 for name in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", name))
        if slides > limits.max_pages:
            raise IngestionError(f"too large: {slides} slides > max_pages={limits.max_pages}")


def _charset(params: str) -> str | None:
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", params, re.IGNORECASE)
    return match.group(1) if match else None


def _decode(data: bytes, charset: str | None) -> str:
    """Decode text bytes: BOM, then declared charset, then UTF-8, then Windows-1252.

    unstructured's own detection guesses from a few bytes and read a Latin-1 French "crème" as
    Windows-1250 "crčme"; documents here are French or English, so Windows-1252 (a superset of
    Latin-1's printable range) is the right fallback.
    """
    for bom, bom_encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(bom_encoding, errors="replace")
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return data.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode("cp1252", errors="replace")


def _check_text_size(chars: int, limits: ParseLimits) -> None:
    pages = math.ceil(chars / CHARS_PER_PAGE)
    if pages > limits.max_pages:
        raise IngestionError(
            f"too large: about {pages} pages ({chars} characters at {CHARS_PER_PAGE} per page) "
            f"> max_pages={limits.max_pages}"
        )
    if chars > limits.max_chars:
        raise IngestionError(f"too large: {chars} characters > max_chars={limits.max_chars}")


def _check_parsed_size(blocks: Sequence[_Block], limits: ParseLimits) -> None:
    pages = max((block.page or 0 for block in blocks), default=0)
    if pages > limits.max_pages:
        raise IngestionError(f"too large once parsed: {pages} pages > max_pages={limits.max_pages}")
    chars = sum(len(block.text) for block in blocks)
    if chars > limits.max_chars:
        raise IngestionError(
            f"too large once parsed: {chars} characters > max_chars={limits.max_chars}"
        )


def _partition(data: bytes, mime: str, *, encoding: str | None = None) -> list[_Block]:
    """Run unstructured on the bytes, declaring ``mime``; wrap its failures as IngestionError."""
    partition = _unstructured_partition()
    kwargs: dict[str, Any] = {}
    if mime == EML:
        # Attachments would be partitioned recursively without the checks above (zip bombs,
        # encrypted PDFs), so they are not ingested.
        kwargs["process_attachments"] = False
    try:
        elements = partition(
            file=io.BytesIO(data),
            content_type=mime,
            encoding=encoding,
            strategy="fast",
            # Only silences "no languages specified" and skips per-document language
            # detection; titles are classified by heuristics either way (see below).
            languages=["eng"],
            **kwargs,
        )
    except ImportError:
        raise  # a missing optional dependency is a deployment bug, not a bad document
    except Exception as exc:  # unstructured and its format libraries raise anything
        label = SUPPORTED[mime]
        raise IngestionError(f"corrupt or unreadable {label}: {exc}") from exc
    blocks: list[_Block] = []
    if mime == EML and elements and getattr(elements[0].metadata, "subject", None):
        # Depth -1 keeps the subject above the body's heuristic titles (depth None -> 0).
        blocks.append(_Block(str(elements[0].metadata.subject), "Title", None, -1))
    for element in elements:
        text = str(element.text).strip()
        if not text:
            continue
        metadata = element.metadata
        if element.category == "Title":
            text = " ".join(text.split())  # a heading is one line; it becomes a path entry
        blocks.append(
            _Block(
                text=text,
                kind=str(element.category),
                page=metadata.page_number,
                depth=metadata.category_depth if element.category == "Title" else None,
                table_html=metadata.text_as_html if element.category == "Table" else None,
            )
        )
    return blocks


@lru_cache(maxsize=1)
def _unstructured_partition() -> Callable[..., list[Any]]:
    """Import unstructured on first use (~3 s and ~500 MB with its PDF stack), offline-safe.

    Imported lazily so that processes which only chunk or embed (and import :class:`Element`)
    do not pay for it.
    """
    _use_blank_spacy_pipeline()
    from unstructured.partition.auto import partition

    return partition


def _use_blank_spacy_pipeline() -> None:
    """Give unstructured a blank English spaCy pipeline instead of ``en_core_web_sm``.

    unstructured 0.27.x loads ``en_core_web_sm`` through ``unstructured.nlp.tokenize._get_nlp``
    on the first partition and, when it is missing, downloads it from GitHub; offline, every
    text-classifying partition then fails. The model is not on PyPI. A blank pipeline with a
    rule-based ``sentencizer`` gives sentence splitting with no download. The cost: no POS tags,
    so unstructured's "contains a verb" test is always false and Title vs NarrativeText rests on
    its other heuristics (word count, capitalisation, punctuation); :func:`_is_heading` then
    discards heuristic titles that read like sentences.
    """
    import spacy
    import unstructured.nlp.tokenize as tokenize

    @lru_cache(maxsize=1)
    def blank_english() -> Any:
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp

    tokenize._get_nlp = blank_english


def _is_heading(block: _Block) -> bool:
    """Whether a Title opens a section: markup-given levels always do; heuristic ones (no
    depth) only when short and not ending like a sentence ("Bonjour, voici la facture.")."""
    if block.kind != "Title":
        return False
    if block.depth is not None:
        return True
    return len(block.text.split()) <= _MAX_TITLE_WORDS and _SENTENCE_END.search(block.text) is None


def _with_section_paths(blocks: Sequence[_Block]) -> list[Element]:
    """Compute each element's section path from the headings before it (a stack by depth)."""
    stack: list[tuple[int, str]] = []
    elements: list[Element] = []
    for block in blocks:
        if _is_heading(block):
            depth = block.depth if block.depth is not None else 0
            while stack and stack[-1][0] >= depth:
                stack.pop()
            stack.append((depth, block.text))
        elements.append(
            Element(
                text=block.text,
                kind=block.kind,
                page=block.page,
                section_path=tuple(title for _, title in stack),
                table_html=block.table_html,
            )
        )
    return elements
