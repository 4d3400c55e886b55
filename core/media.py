"""Which document types gedrag accepts, decided from the bytes, never from the file name.

The extension is only a hint between text formats that the content cannot tell apart
(Markdown vs plain text, CSV vs plain text); binary formats are recognised by their signature and,
for ZIP containers, by the members that define them (``word/document.xml`` ...). A name that
declares an image, audio, video, archive or program refuses everything but a supported binary
document or page image (PNG, JPEG, TIFF, WebP, HEIC: read by OCR): such bytes are never read as
text; a name that declares an Office or OpenDocument
file refuses content that is not that zip container. :func:`check` says why it refuses.

Text is decoded by :func:`decode_text` (the sniffer and the parser share it): a byte-order mark,
then strict UTF-8, UTF-8 with its few invalid bytes replaced and counted, BOM-less UTF-16,
Windows-1252, then charset-normalizer's guess; ANSI escape sequences do not count against text.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

import charset_normalizer

from core.errors import UnsupportedMediaType

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
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
WEBP = "image/webp"
HEIC = "image/heic"
# Images of pages (scans, photos of a page): read by OCR (ingestion.ocr).
IMAGES = frozenset({PNG, JPEG, TIFF, WEBP, HEIC})

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
    PNG: "PNG image",
    JPEG: "JPEG image",
    TIFF: "TIFF image",
    WEBP: "WebP image",
    HEIC: "HEIC image",
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
    PNG: ".png",
    JPEG: ".jpg",
    TIFF: ".tif",
    WEBP: ".webp",
    HEIC: ".heic",
}

HEAD_BYTES = 64 * 1024
_OOXML = {"word/document.xml": DOCX, "ppt/presentation.xml": PPTX, "xl/workbook.xml": XLSX}
_EMAIL_HEADER = re.compile(
    rb"^(From|To|Subject|Date|Received|Return-Path|Message-ID|MIME-Version|Delivered-To|"
    rb"Content-Type|Reply-To|Cc):[ \t]",
    re.IGNORECASE,
)
_MARKDOWN = re.compile(r"^(#{1,6} \S|```|\s*[-*+] \S|\s*\d+\. \S|>\s)|\[[^\]]+\]\([^)]+\)", re.M)
# Names that declare content gedrag cannot read as text (images, read by OCR; audio, video,
# archives, programs). Such a file is accepted only when its bytes are a supported binary
# document or page image: a 1-byte "photo.jpg" decodes as the Windows-1252 text "ÿ" and would
# otherwise be indexed as text.
NOT_DOCUMENT_EXTENSIONS = frozenset(
    (  # noqa: SIM905 - a word list reads best as words
        ".jpg .jpeg .png .gif .bmp .tif .tiff .webp .heic .heif .svg .ico .psd .raw .cr2 .nef "
        ".mp3 .wav .ogg .flac .m4a .aac .mp4 .mov .avi .mkv .webm .wmv "
        ".zip .gz .tgz .bz2 .xz .7z .rar .tar .exe .dll .so .dmg .iso .bin .apk .jar"
    ).split()
)
# Text that is not valid UTF-8 is read as Windows-1252; binary without NUL bytes reads the same
# way, as mostly accented letters and symbols. French prose in Windows-1252 has 2-5 % non-ASCII
# characters ("Café crème, déjà vu", an extreme, 24 %): above 30 % it is not text.
MAX_NON_ASCII_SHARE = 0.3
# Undecodable bytes a text may hold and still be text: corrupt bytes in a UTF-8 file are
# damage to report; random binary decodes with over half its bytes invalid.
MAX_REPLACED_SHARE = 0.1
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Byte-order marks, longest first (a UTF-32-LE BOM starts with the UTF-16-LE one).
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
# Names of zip containers and legacy Office files: other content under such a name is refused
# with the reason, never read as text (issue #23: a text file named .docx was indexed as text).
_CONTAINER_NAMES = {
    ".docx": DOCX,
    ".docm": DOCX,
    ".dotx": DOCX,
    ".xlsx": XLSX,
    ".xlsm": XLSX,
    ".pptx": PPTX,
    ".ppsx": PPTX,
    ".odt": ODT,
}
_LEGACY_OFFICE = frozenset({".doc", ".xls", ".ppt", ".ods", ".odp", ".odg", ".rtf", ".pages"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
# Signatures of the page images read by OCR; the brand of an ISO media file (bytes 8-12) tells
# HEIC/HEIF photos (iPhones) from videos.
_PAGE_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
# Images that are not pages of a document.
_OTHER_IMAGES = ((b"GIF8", "GIF"), (b"BM", "BMP"))


@dataclass(frozen=True)
class DecodedText:
    """Text decoded from bytes: the encoding used and how many byte sequences could not be
    decoded (each replaced by U+FFFD)."""

    text: str
    encoding: str
    replaced: int = 0


def supported_list() -> str:
    return ", ".join(f"{name} ({mt})" for mt, name in SUPPORTED.items())


def sniff(source: BinaryIO, filename: str = "") -> str | None:
    """The media type of a seekable file from its content, or ``None`` if unsupported."""
    try:
        return check(source, filename)
    except UnsupportedMediaType:
        return None


def check(source: BinaryIO, filename: str = "") -> str:
    """The media type of a seekable file from its content; :class:`UnsupportedMediaType` saying
    why otherwise (a name that promises a format the bytes are not, an image, binary data)."""
    source.seek(0)
    head = source.read(HEAD_BYTES)
    source.seek(0)
    name = filename or "the file"
    extension = _extension(filename)
    if not head:
        raise UnsupportedMediaType(f"{name!r} is empty")
    if b"%PDF-" in head[:1024]:
        return PDF
    declared = _CONTAINER_NAMES.get(extension)
    if head.startswith(b"PK\x03\x04"):
        found = _sniff_zip(source)
        if found is not None:
            return found
        what = f"a {SUPPORTED[declared]} file" if declared else "a supported document"
        raise UnsupportedMediaType(
            f"{name!r} is a zip archive but not {what}: it lacks the parts that define one "
            "([Content_Types].xml with word/document.xml, ppt/presentation.xml or "
            "xl/workbook.xml; or an OpenDocument 'mimetype' entry)"
        )
    if head.startswith(_OLE_MAGIC):
        raise UnsupportedMediaType(
            f"{name!r} is a legacy Office file (.doc, .xls, .ppt) or a password-protected one: "
            "neither can be read; save it as DOCX, XLSX or PPTX without a password"
        )
    for magic, page_image in _PAGE_IMAGES:
        if head.startswith(magic):
            return page_image
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return HEIC
    for magic, image in _OTHER_IMAGES:
        if head.startswith(magic):
            raise UnsupportedMediaType(
                f"{name!r} is a {image} image: gedrag reads scans and photos of pages as PNG, "
                "JPEG, TIFF, WebP or HEIC"
            )
    if head.startswith(b"\x1f\x8b"):
        raise UnsupportedMediaType(f"{name!r} is a gzip archive, not a document")
    if declared is not None:
        raise UnsupportedMediaType(
            f"{name!r} is named as {SUPPORTED[declared]} but is not one: its content is not a "
            "zip archive, which every such file is"
        )
    if extension in _LEGACY_OFFICE:
        raise UnsupportedMediaType(
            f"{name!r} is named as a format gedrag does not read ({extension})"
        )
    if extension in NOT_DOCUMENT_EXTENSIONS:
        raise UnsupportedMediaType(
            f"{name!r} is named as an image, audio, video, archive or program ({extension}) "
            "and holds no supported document"
        )
    text = _as_text(head)
    if text is None:
        raise UnsupportedMediaType(f"{name!r} holds binary data, not a supported document")
    return _sniff_text(text, head, filename.lower())


def _extension(filename: str) -> str:
    _, dot, ext = filename.lower().rpartition(".")
    return f".{ext}" if dot else ""


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
    """The head decoded, or ``None`` when it is not text: NUL bytes outside UTF-16/32, more
    than 1 % control characters (ANSI escape sequences excepted), more than 10 % undecodable
    bytes, or an 8-bit decoding that is mostly symbols."""
    # A multi-byte character may be cut at the end of the head: ignore the last 3 bytes.
    sample = head[:-3] if len(head) == HEAD_BYTES else head
    decoded = decode_text(sample)
    if decoded.encoding in ("utf-8", "cp1252") and b"\x00" in sample:
        return None
    text = _ANSI.sub("", decoded.text)
    if not text.strip():
        return text  # blank: the parser says it has no text
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
    if controls > len(text) // 100 or decoded.replaced > MAX_REPLACED_SHARE * len(text):
        return None
    if decoded.encoding != "utf-8" and not decoded.encoding.startswith("utf-"):
        visible = [c for c in text if not c.isspace()]
        non_ascii = sum(1 for c in visible if ord(c) > 127)
        if not visible or non_ascii > MAX_NON_ASCII_SHARE * len(visible):
            return None
    return text


def decode_text(data: bytes, declared: str | None = None) -> DecodedText:
    """Decode a text file's bytes, whatever they are: never raises.

    Order: a byte-order mark (UTF-8, UTF-16, UTF-32); the charset the upload declared; strict
    BOM-less UTF-16 (every other byte NUL); UTF-8; UTF-8 with invalid bytes replaced when the
    file also holds valid multi-byte UTF-8 (text damaged, not another encoding); Windows-1252,
    the encoding of French and English 8-bit text (a detector read Latin-1 "crème" as
    Windows-1250 "crčme"); charset-normalizer's best guess; Windows-1252 with replacements.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _replacing(data[len(bom) :], encoding)
    if declared:
        try:
            return DecodedText(data.decode(declared), declared.lower())
        except (UnicodeDecodeError, LookupError):
            pass
    utf16 = _utf16_without_bom(data)  # before UTF-8: NUL bytes are valid UTF-8
    if utf16 is not None:
        return _replacing(data, utf16)
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    if any(ord(c) > 127 for c in data.decode("utf-8", "ignore")):
        return _replacing(data, "utf-8")
    try:
        return DecodedText(data.decode("cp1252"), "cp1252")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data[: 4 * HEAD_BYTES]).best()
    if best is not None and best.encoding:
        guessed = _replacing(data, best.encoding)
        if guessed.replaced == 0:
            return guessed
    return _replacing(data, "cp1252")


def _replacing(data: bytes, encoding: str) -> DecodedText:
    """Decode with undecodable bytes replaced, counting them (genuine U+FFFD characters in
    the text are not counted: they survive decoding with ``ignore`` too)."""
    replaced = data.decode(encoding, "replace")
    kept = data.decode(encoding, "ignore")
    return DecodedText(replaced, encoding, replaced.count("\ufffd") - kept.count("\ufffd"))


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when every other byte of the start is NUL (Latin text), else None."""
    sample = data[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.4 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.4 and odd_nul < 0.05:
        return "utf-16-be"
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
