"""Which document types gedrag accepts, decided from the bytes, never from the file name.

The extension is only a hint between text formats that the content cannot tell apart
(Markdown vs plain text, CSV vs plain text); binary formats are recognised by their signature and,
for ZIP containers, by the members that define them (``word/document.xml`` ...).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import BinaryIO

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
CSV = "text/csv"
EML = "message/rfc822"

SUPPORTED: dict[str, str] = {
    PDF: "PDF",
    DOCX: "Word (DOCX)",
    PPTX: "PowerPoint (PPTX)",
    XLSX: "Excel (XLSX)",
    ODT: "OpenDocument text (ODT)",
    HTML: "HTML",
    MARKDOWN: "Markdown",
    TEXT: "plain text",
    CSV: "CSV",
    EML: "e-mail (EML)",
}

EXTENSIONS: dict[str, str] = {
    PDF: ".pdf",
    DOCX: ".docx",
    PPTX: ".pptx",
    XLSX: ".xlsx",
    ODT: ".odt",
    HTML: ".html",
    MARKDOWN: ".md",
    TEXT: ".txt",
    CSV: ".csv",
    EML: ".eml",
}

HEAD_BYTES = 64 * 1024
_OOXML = {"word/document.xml": DOCX, "ppt/presentation.xml": PPTX, "xl/workbook.xml": XLSX}
_EMAIL_HEADER = re.compile(
    rb"^(From|To|Subject|Date|Received|Return-Path|Message-ID|MIME-Version|Delivered-To|"
    rb"Content-Type|Reply-To|Cc):[ \t]",
    re.IGNORECASE,
)
_MARKDOWN = re.compile(r"^(#{1,6} \S|```|\s*[-*+] \S|\s*\d+\. \S|>\s)|\[[^\]]+\]\([^)]+\)", re.M)


def supported_list() -> str:
    return ", ".join(f"{name} ({mt})" for mt, name in SUPPORTED.items())


def sniff(source: BinaryIO, filename: str = "") -> str | None:
    """The media type of a seekable file from its content, or ``None`` if unsupported."""
    source.seek(0)
    head = source.read(HEAD_BYTES)
    source.seek(0)
    if not head:
        return None
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(source)
    if head.startswith((b"\xd0\xcf\x11\xe0", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"\x1f\x8b")):
        return None  # legacy Office, images (no OCR), gzip
    text = _as_text(head)
    if text is None:
        return None
    return _sniff_text(text, head, filename.lower())


def _sniff_zip(source: BinaryIO) -> str | None:
    try:
        with zipfile.ZipFile(source) as zf:
            names = set(zf.namelist())
            if "mimetype" in names and zf.read("mimetype").strip() == ODT.encode():
                return ODT
            if "[Content_Types].xml" in names:
                for member, media_type in _OOXML.items():
                    if member in names:
                        return media_type
    except (zipfile.BadZipFile, OSError, KeyError):
        return None
    finally:
        source.seek(0)
    return None


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            # A multi-byte character may be cut at the end of the head: ignore the last 3 bytes.
            text = head[:-3].decode(encoding) if len(head) == HEAD_BYTES else head.decode(encoding)
        except UnicodeDecodeError:
            continue
        controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
        return text if controls <= len(text) // 100 else None
    return None


def _sniff_text(text: str, head: bytes, filename: str) -> str:
    start = text.lstrip()[:1024].lower()
    if start.startswith(("<!doctype html", "<html")) or (
        start.startswith("<") and re.search(r"<(html|body|head)[\s>]", start)
    ):
        return HTML
    first_block = head.lstrip().split(b"\n\n", 1)[0].splitlines()
    headers = [line for line in first_block[:40] if _EMAIL_HEADER.match(line)]
    if len(headers) >= 2 and any(h.lower().startswith(b"from:") for h in headers):
        return EML
    if filename.endswith((".md", ".markdown")) or len(_MARKDOWN.findall(text[:20000])) >= 2:
        return MARKDOWN
    if _looks_like_csv(text, filename):
        return CSV
    return TEXT


def _looks_like_csv(text: str, filename: str) -> bool:
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)), dialect)}
    if len(widths) != 1:
        return False
    width = widths.pop()
    # Without the .csv hint, ask for a real table (3+ rows of 3+ columns), not prose with commas.
    return width >= 2 and (filename.endswith(".csv") or (len(lines) >= 3 and width >= 3))
