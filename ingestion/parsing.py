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
* Text formats: decoded here (:func:`core.media.decode_text`: BOM, UTF-8, UTF-16, Windows-1252,
  charset-normalizer; undecodable bytes replaced and counted in a warning), ANSI escapes
  stripped, and sized before parsing, so a 10,000-page text file is refused in milliseconds.
* HTML and Markdown (rendered to HTML as unstructured does): nesting beyond lxml's 255 levels is
  refused with that cause (lxml silently drops the whole text), and what a reader would not see
  is removed (:mod:`ingestion.sanitize`); every element's text loses invisible and control
  characters. PDF content streams that inflate like a bomb are refused before pdfminer inflates
  them; an ODT that pandoc cannot convert is read from its ``content.xml``.

Every bad document raises :class:`core.errors.IngestionError` with a cause a user can act on;
library exceptions are translated (:func:`failure_cause`), their raw text goes to the log.
:func:`parse_document` also returns the document's title and the warnings a user should see.
"""

from __future__ import annotations

import html
import io
import logging
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import lxml.html
import pypdf
from lxml import etree
from pypdf import PasswordType

from core.errors import IngestionError, UnsupportedMediaType
from core.media import (
    CSV,
    DOCX,
    EML,
    HTML,
    IMAGES,
    MARKDOWN,
    ODT,
    PDF,
    PPTX,
    SUPPORTED,
    TEXT,
    XLSX,
    decode_text,
)
from ingestion.sanitize import strip_hidden_html, strip_invisible

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
# lxml (under unstructured) stops at 256 levels of nesting and then returns no text at all.
MAX_HTML_DEPTH = 255
# The Markdown extensions unstructured's partition_md renders with.
_MARKDOWN_EXTENSIONS = ["tables", "fenced_code"]
# PDF streams other than images, inflated before pdfminer does it without a bound: a stream that
# inflates past 100x its size to over 10 MB, or 500 MB in all, is a decompression bomb (content
# streams and fonts inflate 2-10x; a 2,000-page text PDF's streams total ~200 MB at most).
_PDF_STREAM = re.compile(rb"stream\r?\n")
_PDF_BOMB_RATIO = 100
_PDF_BOMB_STREAM_FLOOR = 10_000_000
_PDF_INFLATED_MAX = 500_000_000

# Page estimate for formats without pages: ~500 words of ~6 characters.
CHARS_PER_PAGE = 3000
# An archive that inflates to under 1 MB cannot hurt, whatever its ratio (an XLSX of zeros
# legitimately compresses > 100:1).
_RATIO_FLOOR_BYTES = 1_000_000
# Legacy OLE2 compound file: what a password-protected DOCX/PPTX/XLSX actually is on disk.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SENTENCE_END = re.compile(r"[.!?,;]\s*$")
# A PDF text line shorter than this share of the page's longest line ends a paragraph.
_SHORT_LINE_SHARE = 0.6
_MAX_TITLE_WORDS = 12
# Under this mean word confidence (0-100) the OCR'd text is flagged as likely poor.
_LOW_OCR_CONFIDENCE = 70
# Formats whose first heading is the author's title (markup, not a layout heuristic): a PDF's
# first "Title" element is as often a running header or "CONFIDENTIAL".
_HEADING_TITLE_TYPES = frozenset({MARKDOWN, HTML, DOCX, ODT, PPTX, EML})
# A title in metadata that names a file or says nothing is no title ("Microsoft Word - a.docx").
_NO_TITLE = re.compile(
    r"(\.(docx?|pdf|pptx?|xlsx?|odt|html?|md|txt|rtf)$)|^(untitled|sans titre|document\d*)$",
    re.IGNORECASE,
)
_DC_TITLE = re.compile(r"<dc:title>(.*?)</dc:title>", re.DOTALL)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.DOTALL | re.IGNORECASE)
_TITLE_CHARS = 300
_METADATA_PART_MAX = 1_000_000


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
class OcrOptions:
    """How scanned pages and images are read (:mod:`ingestion.ocr`): Tesseract's languages,
    the time limit of one page, the largest page image."""

    languages: str = "fra+eng"
    page_s: float = 60.0
    max_pixels: int = 40_000_000


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on what one document may expand to; exceeding any fails the document.

    ``max_pages`` counts real pages (PDF, PPTX slides, DOCX page breaks) or, for text formats,
    characters / 3000. ``max_archive_bytes`` and ``max_archive_ratio`` bound what a ZIP-based
    document declares it inflates to, checked before it is inflated. ``ocr`` says how scans
    are read; ``None``: they are not (OCR off).
    """

    max_pages: int = 2000
    max_chars: int = 20_000_000
    max_archive_bytes: int = 200_000_000
    max_archive_ratio: float = 100.0
    ocr: OcrOptions | None = OcrOptions()


@dataclass(frozen=True)
class Parsed:
    """A parsed document: its elements, the title it gives itself (if any), and what a user
    should know about how it was read (bytes replaced, hidden text removed, pages read by OCR).

    ``ocr_pages`` are the pages read by OCR; ``scan_pages`` those that need it and were not
    read (OCR deferred by :func:`parse_document`'s ``defer_ocr``, or off).
    """

    elements: list[Element]
    title: str | None = None
    warnings: list[str] = field(default_factory=list)
    ocr_pages: tuple[int, ...] = ()
    scan_pages: tuple[int, ...] = ()


@dataclass
class _Scans:
    """Pages of the document being parsed that need OCR, and those OCR read."""

    defer: bool
    unread: list[int] = field(default_factory=list)
    read: list[int] = field(default_factory=list)
    tried: list[int] = field(default_factory=list)  # given to OCR, legible or not


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
    return _parse(data, media_type, filename, limits or ParseLimits(), [], _Scans(defer=False))


def parse_document(
    data: bytes,
    *,
    media_type: str,
    filename: str,
    limits: ParseLimits | None = None,
    defer_ocr: bool = False,
) -> Parsed:
    """:func:`parse`, with the document's own title (:func:`document_title`) and the warnings
    its reading raised. Runs where the parse budget is enforced (``ingestion.limits``).

    ``defer_ocr``: pages that need OCR are not read but listed in ``scan_pages`` (an image's
    pages too), and a document with no text elsewhere comes back empty rather than failing,
    so that the caller can give the OCR its own time budget and parse again.
    """
    warnings: list[str] = []
    scans = _Scans(defer=defer_ocr)
    elements = _parse(data, media_type, filename, limits or ParseLimits(), warnings, scans)
    title = document_title(data, media_type, elements) if elements else None
    return Parsed(elements, title, warnings, tuple(scans.read), tuple(scans.unread))


def _parse(
    data: bytes,
    media_type: str,
    filename: str,
    limits: ParseLimits,
    warnings: list[str],
    scans: _Scans,
) -> list[Element]:
    mime, _, params = media_type.partition(";")
    mime = mime.strip().lower()
    label = SUPPORTED.get(mime)
    if label is None:
        raise UnsupportedMediaType(f"unsupported media type {media_type!r}")
    if not data:
        raise IngestionError(f"empty {label} file")

    try:
        if mime == PDF:
            blocks = _parse_pdf(data, filename, limits, warnings, scans)
        elif mime in IMAGES:
            blocks = _parse_image(data, label, limits, warnings, scans)
        elif mime in _ZIP_MAIN_PART:
            _check_archive(data, mime, limits)
            blocks = _parse_zip_document(data, mime)
        elif mime in _DECODED_TYPES:
            text = _decode(data, _charset(params), label, warnings)
            if mime in _PLAIN_TEXT_TYPES:
                _check_text_size(len(text), limits)
            if mime in (HTML, MARKDOWN):
                blocks = _parse_markup(text, mime, label, warnings)
            else:
                blocks = _partition(text.encode("utf-8"), mime, encoding="utf-8")
        else:
            blocks = _partition(data, mime)
    except (IngestionError, UnsupportedMediaType):
        raise
    except (RecursionError, MemoryError, zlib.error, zipfile.BadZipFile) as exc:
        # Raised outside the partition call (pypdf, zipfile, lxml, markdown): same causes.
        _log.warning("parser failed", extra={"media_type": mime, "error": repr(exc)[:500]})
        raise IngestionError(f"corrupt or unreadable {label}: {failure_cause(exc, mime)}") from exc

    blocks = _without_invisible(blocks, warnings)
    _check_parsed_size(blocks, limits)
    if not any(block.text.strip() for block in blocks):
        if scans.defer and scans.unread:
            return []  # the caller reads the scans with their own budget
        if scans.tried:
            raise IngestionError(
                "no extractable text: OCR found no legible text on the scanned pages"
            )
        raise IngestionError("no extractable text; OCR not enabled")
    return _with_section_paths(blocks)


def _ocr_blocks(page: int, text: str) -> list[_Block]:
    """A page read by OCR as paragraphs (:func:`_reflow` of its lines)."""
    return [
        _Block(text=paragraph, kind="UncategorizedText", page=page, depth=None)
        for paragraph in _reflow(text)
    ]


def _ocr_note(pages: Sequence[int], confidences: Sequence[float], warnings: list[str]) -> None:
    if not pages:
        return
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    shown = ", ".join(str(n) for n in pages[:20]) + (" ..." if len(pages) > 20 else "")
    note = f"read by OCR (Tesseract): page(s) {shown}, mean word confidence {mean:.0f} %"
    if mean < _LOW_OCR_CONFIDENCE:
        note += "; low: check the scan's quality (300 dpi, straight, well lit)"
    warnings.append(note)


def _parse_image(
    data: bytes, label: str, limits: ParseLimits, warnings: list[str], scans: _Scans
) -> list[_Block]:
    """An image file (a scan, a photo of a page), read page by page by OCR."""
    from ingestion import ocr  # OpenCV and PDFium load only where scans are read

    if limits.ocr is None:
        raise IngestionError(
            f"this {label} image can only be read by OCR, which is off (GEDRAG_OCR__ENABLED)"
        )
    if scans.defer:
        count = ocr.image_pages(data, max_pixels=limits.ocr.max_pixels, max_pages=limits.max_pages)
        scans.unread.extend(range(1, count + 1))
        return []
    pages = ocr.ocr_images(
        data,
        limits.ocr.languages,
        max_pixels=limits.ocr.max_pixels,
        max_pages=limits.max_pages,
        timeout_s=limits.ocr.page_s,
    )
    scans.tried.extend(range(1, len(pages) + 1))
    blocks: list[_Block] = []
    for number, page in enumerate(pages, start=1):
        blocks.extend(_ocr_blocks(number, page.text))
    scans.read.extend(range(1, len(pages) + 1))
    _ocr_note(scans.read, [p.confidence for p in pages if p.words], warnings)
    return blocks


def _read_scanned_pages(
    data: bytes,
    pages: dict[int, list[_Block]],
    limits: ParseLimits,
    warnings: list[str],
    scans: _Scans,
) -> dict[int, list[_Block]]:
    """Pages whose text layer is missing or garbage (:func:`ingestion.ocr.needs_ocr`), read
    by OCR; a page keeps its own text when OCR reads fewer words from it."""
    from ingestion import ocr

    wanted = [n for n, blocks in pages.items() if ocr.needs_ocr("\n".join(b.text for b in blocks))]
    if not wanted:
        return pages
    if limits.ocr is None or scans.defer:
        scans.unread.extend(wanted)
        if limits.ocr is None:
            warnings.append(
                f"{len(wanted)} page(s) without a text layer (scans) were not read: OCR is off "
                "(GEDRAG_OCR__ENABLED)"
            )
        return pages
    try:
        ocr.check_languages(limits.ocr.languages)
    except IngestionError as exc:
        if not any(b.text.strip() for n, found in pages.items() if n not in wanted for b in found):
            raise
        # Text elsewhere: index it, and say which pages wait for OCR to be installed.
        warnings.append(f"{len(wanted)} page(s) without a text layer were not read: {exc.detail}")
        return pages
    results = ocr.ocr_pdf_pages(
        data,
        wanted,
        languages=limits.ocr.languages,
        max_pixels=limits.ocr.max_pixels,
        max_pages=limits.max_pages,
        timeout_s=limits.ocr.page_s,
    )
    scans.tried.extend(wanted)
    read = dict(pages)
    confidences = []
    for number, page in zip(wanted, results, strict=True):
        own_words = sum(len(b.text.split()) for b in pages[number])
        if page.words > own_words:
            read[number] = _ocr_blocks(number, page.text)
            scans.read.append(number)
            confidences.append(page.confidence)
    _ocr_note(scans.read, confidences, warnings)
    return read


def _parse_zip_document(data: bytes, mime: str) -> list[_Block]:
    """unstructured's reader; for ODT, the ``content.xml`` reader when pandoc fails (pandoc
    refuses valid files without ``styles.xml``: "Could not find styles.xml")."""
    if mime != ODT:
        return _partition(data, mime)
    try:
        return _partition(data, mime)
    except IngestionError as exc:
        _log.info("pandoc could not read the ODT; reading content.xml", extra={"error": str(exc)})
    try:
        return _odt_blocks(data)
    except IngestionError:
        raise
    except Exception as exc:  # encrypted or damaged content.xml: neither reader could
        cause = failure_cause(exc, ODT)
        raise IngestionError(f"corrupt or unreadable {SUPPORTED[ODT]}: {cause}") from exc


def _parse_markup(text: str, mime: str, label: str, warnings: list[str]) -> list[_Block]:
    """HTML, or Markdown rendered to HTML as unstructured's ``partition_md`` does, checked for
    nesting and stripped of what a reader would not see, then partitioned as HTML."""
    if mime == MARKDOWN:
        import markdown

        markup = markdown.markdown(text, extensions=_MARKDOWN_EXTENSIONS)
    else:
        markup = text
    depth_error = _too_deep(markup)
    if depth_error:
        raise IngestionError(
            f"the {label} nests elements more than {MAX_HTML_DEPTH} levels deep "
            f"({depth_error}); gedrag reads at most {MAX_HTML_DEPTH}"
        )
    markup, hidden = strip_hidden_html(markup)
    if hidden.elements:
        warnings.append(
            f"hidden text not indexed: {hidden.elements} element(s) a reader would not see "
            f"({hidden.chars} characters: hidden, display:none, invisible colour...)"
        )
    return _partition(markup.encode("utf-8"), HTML, encoding="utf-8")


def _too_deep(markup: str) -> str | None:
    """lxml's own verdict on the nesting: it reports where it stopped reading."""
    if not markup.strip():
        return None
    parser = lxml.html.HTMLParser()
    try:
        lxml.html.document_fromstring(markup, parser=parser)
    except (etree.ParserError, ValueError):
        return None
    for error in parser.error_log:
        if "Excessive depth" in error.message:
            return f"line {error.line}"
    return None


def _without_invisible(blocks: Sequence[_Block], warnings: list[str]) -> list[_Block]:
    """Every block's text (and table) without invisible or control characters."""
    cleaned: list[_Block] = []
    removed = 0
    for block in blocks:
        text, n = strip_invisible(block.text)
        table = block.table_html
        if table is not None:
            table, m = strip_invisible(table)
            n += m
        removed += n
        cleaned.append(replace(block, text=text, table_html=table) if n else block)
    if removed:
        warnings.append(
            f"{removed} invisible or control character(s) not indexed (zero-width, Unicode "
            "tags, bidi controls, escape sequences)"
        )
    return cleaned


def document_title(data: bytes, media_type: str, elements: Sequence[Element]) -> str | None:
    """The title the document gives itself, or ``None``: its metadata (PDF ``/Title``, the
    core properties of DOCX, PPTX and XLSX, ODT's ``meta.xml``, HTML's ``<title>``), else, for
    markup formats, a heading among its first three elements (Markdown ``#``, a first slide's
    title, an e-mail's subject). Call after :func:`parse` accepted the bytes; metadata that
    cannot be read is skipped, never an error."""
    mime = media_type.partition(";")[0].strip().lower()
    found: str | None = None
    try:
        if mime == PDF:
            meta = pypdf.PdfReader(io.BytesIO(data)).metadata
            found = None if meta is None else meta.title
        elif mime in (DOCX, PPTX, XLSX, ODT):
            found = _zip_title(data, "meta.xml" if mime == ODT else "docProps/core.xml")
        elif mime == HTML:
            match = _HTML_TITLE.search(_decode(data[:65536], None))
            found = None if match is None else match.group(1)
    except Exception:  # damaged metadata: the document itself parsed, so it keeps its file name
        _log.debug("document metadata unreadable", exc_info=True)
    title = _clean_title(found)
    if title is None and mime in _HEADING_TITLE_TYPES:
        for element in elements[:3]:
            if element.kind == "Title" and element.section_path[-1:] == (element.text,):
                return _clean_title(element.text)
    return title


def _zip_title(data: bytes, member: str) -> str | None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(member)
        if info.file_size > _METADATA_PART_MAX:
            return None
        match = _DC_TITLE.search(zf.read(info).decode("utf-8", errors="replace"))
    return None if match is None else match.group(1)


def _clean_title(raw: str | None) -> str | None:
    title = " ".join(html.unescape(raw or "").split())[:_TITLE_CHARS]
    return title if title and not _NO_TITLE.search(title) else None


def _parse_pdf(
    data: bytes, filename: str, limits: ParseLimits, warnings: list[str], scans: _Scans
) -> list[_Block]:
    reader = _open_pdf(data)
    page_count = len(reader.pages)
    if page_count > limits.max_pages:
        raise IngestionError(f"too large: {page_count} pages > max_pages={limits.max_pages}")
    _check_pdf_streams(data)
    blocks = _partition(data, PDF)
    by_page: dict[int, list[_Block]] = {n: [] for n in range(1, page_count + 1)}
    for block in blocks:
        by_page.setdefault(block.page or 1, []).append(block)
    missing = [n for n, found in by_page.items() if not any(b.text.strip() for b in found)]
    recovered = {n: _pypdf_page_blocks(reader, n) for n in missing}
    recovered = {n: page_blocks for n, page_blocks in recovered.items() if page_blocks}
    if recovered:
        _log.warning(
            "unstructured returned no text for PDF pages; used pypdf text",
            extra={"document_filename": filename, "pages": sorted(recovered)},
        )
        by_page.update(recovered)
    by_page = _read_scanned_pages(data, by_page, limits, warnings, scans)
    return [block for page in sorted(by_page) for block in by_page[page]]


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
        _log.warning("pypdf could not open the PDF", extra={"error": repr(exc)[:500]})
        cause = (
            "the PDF is truncated: its end (the %EOF marker or the last objects) is missing"
            if b"%%EOF" not in data[-2048:]
            else failure_cause(exc, PDF)
        )
        raise IngestionError(f"corrupt or unreadable PDF: {cause}") from exc
    return reader


def _check_pdf_streams(data: bytes) -> None:
    """Refuse a PDF whose non-image streams inflate like a decompression bomb, inflating each
    at most to the bound (pdfminer inflates them whole, with no bound, before any text)."""
    total = 0
    for match in _PDF_STREAM.finditer(data):
        start = match.end()
        end = data.find(b"endstream", start)
        if end < 0:
            break
        header = data[max(0, data.rfind(b"obj", 0, match.start())) : match.start()]
        if b"/Image" in header or b"/FlateDecode" not in header:
            continue  # images are not inflated for text; other filters are not bombs here
        inflated = _inflated_size(data[start:end], _PDF_INFLATED_MAX - total + 1)
        total += inflated
        ratio = inflated / max(1, end - start)
        if total > _PDF_INFLATED_MAX or (
            inflated > _PDF_BOMB_STREAM_FLOOR and ratio > _PDF_BOMB_RATIO
        ):
            raise IngestionError(
                "the PDF's compressed content expands too much (possible decompression bomb): "
                f"one stream of {end - start} bytes inflates to over {inflated} bytes "
                f"(limits: ratio {_PDF_BOMB_RATIO} beyond {_PDF_BOMB_STREAM_FLOOR} bytes, "
                f"{_PDF_INFLATED_MAX} bytes in all)"
            )


def _inflated_size(raw: bytes, bound: int) -> int:
    """How many bytes a zlib stream inflates to, counting at most ``bound`` (1 MB at a time:
    the inflated bytes are never held together)."""
    inflater = zlib.decompressobj()
    size = 0
    pending = raw
    try:
        while pending and size < bound and not inflater.eof:
            inflated = len(inflater.decompress(pending, 1_000_000))
            if not inflated:
                break  # no progress: the stream waits for input it will never get
            size += inflated
            pending = inflater.unconsumed_tail
    except zlib.error:
        pass  # damaged or truncated: pdfminer meets the same end
    return size


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


def _decode(
    data: bytes, charset: str | None, label: str = "text", warnings: list[str] | None = None
) -> str:
    """Decode text bytes (:func:`core.media.decode_text`) without ANSI escape sequences;
    replaced bytes are said in ``warnings``.

    unstructured's own detection guesses from a few bytes and read a Latin-1 French "crème" as
    Windows-1250 "crčme"; documents here are French or English, so Windows-1252 (a superset of
    Latin-1's printable range) comes before a detector's guess.
    """
    decoded = decode_text(data, charset)
    if decoded.replaced and warnings is not None:
        warnings.append(
            f"{decoded.replaced} byte sequence(s) of the {label} could not be decoded as "
            f"{decoded.encoding} and were replaced by \ufffd"
        )
    return decoded.text


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
        _log.warning("parser failed", extra={"media_type": mime, "error": repr(exc)[:500]})
        raise IngestionError(f"corrupt or unreadable {label}: {failure_cause(exc, mime)}") from exc
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


def failure_cause(exc: BaseException, mime: str) -> str:
    """What went wrong, in words a user can act on, for an exception a parser raised (issue
    #23: "list index out of range", "maximum recursion depth exceeded ..." reached users).
    The raw exception is for the log, never the cause."""
    label = SUPPORTED.get(mime, "document")
    message = str(exc).lower()
    module = type(exc).__module__ or ""
    if isinstance(exc, RecursionError):
        return (
            f"the {label} is nested too deeply to be read (lists, quotes or tags inside each other)"
        )
    if isinstance(exc, MemoryError):
        return (
            f"reading the {label} needs more memory than one document may use "
            "(GEDRAG_LIMITS__PARSE_MEMORY_MB)"
        )
    if isinstance(exc, zipfile.BadZipFile | zlib.error) or "decompress" in message:
        return f"the {label}'s compressed content is damaged"
    if isinstance(exc, UnicodeError):
        return f"the {label} holds text in an encoding that cannot be read"
    if isinstance(exc, etree.XMLSyntaxError) or type(exc).__name__ in ("ParseError", "ExpatError"):
        return f"the {label}'s XML is malformed"
    if mime == PDF:
        if "eof" in message or type(exc).__name__ == "PSEOF":
            return "the PDF is truncated: its end (the %EOF marker or the last objects) is missing"
        if any(word in message for word in ("kids", "/pages", "page tree", "page reference")):
            return "the PDF's page tree is broken (pages missing, misplaced or in a cycle)"
        if "xref" in message or "trailer" in message or "startxref" in message:
            return "the PDF's cross-reference table is damaged"
        if isinstance(exc, IndexError | KeyError | TypeError | AttributeError | ValueError):
            return "the PDF's page tree is broken (pages that point to missing objects)"
        if module.startswith(("pdfminer", "pypdf", "pikepdf")):
            return "the PDF's structure is damaged"
    if mime in _ZIP_MAIN_PART and isinstance(exc, KeyError):
        return f"a part the {label} refers to is missing from its archive"
    if "pandoc" in message:
        return f"the {label} could not be converted (pandoc refused it)"
    return f"the {label} is damaged or uses a feature gedrag cannot read"


_ODT_NS = {
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
}


def _odt_blocks(data: bytes) -> list[_Block]:
    """An ODT's headings, paragraphs, list items and tables from ``content.xml`` alone (no
    styles, no pandoc). The XML parser resolves no entity and reads no network (no XML bomb)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        content = archive.read("content.xml")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(content, parser)
    body = root.find("office:body/office:text", _ODT_NS)
    if body is None:
        raise IngestionError("corrupt or unreadable OpenDocument text (ODT): it has no text body")
    text_ns, table_ns = f"{{{_ODT_NS['text']}}}", f"{{{_ODT_NS['table']}}}"
    blocks: list[_Block] = []
    stack: list[tuple[etree._Element, bool]] = [(child, False) for child in reversed(body)]
    while stack:
        node, in_list = stack.pop()
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag == f"{text_ns}h":
            level = int(node.get(f"{text_ns}outline-level", "1") or 1)
            blocks.append(_Block(_odt_text(node), "Title", None, max(0, level - 1)))
        elif tag == f"{text_ns}p":
            kind = "ListItem" if in_list else "NarrativeText"
            blocks.append(_Block(_odt_text(node), kind, None, None))
        elif tag == f"{table_ns}table":
            rows = [
                [_odt_text(cell) for cell in row.iter(f"{table_ns}table-cell")]
                for row in node.iter(f"{table_ns}table-row")
            ]
            cells = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in rows
            )
            text = "\n".join(" ".join(c for c in row if c) for row in rows)
            blocks.append(_Block(text, "Table", None, None, f"<table>{cells}</table>"))
        else:
            listed = in_list or tag in (f"{text_ns}list", f"{text_ns}list-item")
            stack.extend((child, listed) for child in reversed(node))
    return [block for block in blocks if block.text.strip()]


def _odt_text(node: etree._Element) -> str:
    """A paragraph's text with ODF's spacing elements (text:s, text:tab, text:line-break)."""
    text_ns = f"{{{_ODT_NS['text']}}}"
    parts: list[str] = []
    for event, element in etree.iterwalk(node, events=("start", "end")):
        if event == "start":
            if element.tag == f"{text_ns}s":
                parts.append(" " * int(element.get(f"{text_ns}c", "1") or 1))
            elif element.tag == f"{text_ns}tab":
                parts.append("\t")
            elif element.tag == f"{text_ns}line-break":
                parts.append("\n")
            elif element.text:
                parts.append(element.text)
        elif element is not node and element.tail:
            parts.append(element.tail)
    return " ".join("".join(parts).split(" ")).strip()


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
