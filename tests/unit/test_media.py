"""Document types are decided from content; the file name is only a hint between text types."""

from __future__ import annotations

import io
import zipfile

import pytest

from core import media

pytestmark = pytest.mark.unit


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def sniff(data: bytes, name: str = "") -> str | None:
    return media.sniff(io.BytesIO(data), name)


OOXML = b"<Types/>"


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"%PDF-1.7\n1 0 obj\n", "a.pdf", media.PDF),
        (b"%PDF-1.4\n", "invoice.txt", media.PDF),  # wrong extension: content wins
        (zipped({"[Content_Types].xml": OOXML, "word/document.xml": b"<w/>"}), "a.zip", media.DOCX),
        (zipped({"[Content_Types].xml": OOXML, "ppt/presentation.xml": b"<p/>"}), "x", media.PPTX),
        (zipped({"[Content_Types].xml": OOXML, "xl/workbook.xml": b"<x/>"}), "x", media.XLSX),
        (zipped({"mimetype": media.ODT.encode(), "content.xml": b"<o/>"}), "x.docx", media.ODT),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "page.txt", media.HTML),
        (b"  <html lang='fr'><head></head></html>", "", media.HTML),
        (b"From: a@b.fr\nTo: c@d.fr\nSubject: Facture\n\nBonjour", "mail", media.EML),
        (b"# Title\n\nText with a [link](http://x).\n", "notes", media.MARKDOWN),
        (b"plain words\n", "readme.md", media.MARKDOWN),
        (b"name;city;age\nAnne;Lyon;31\nBob;Nice;42\n", "people", media.CSV),
        (b"a,b\n1,2\n", "tiny.csv", media.CSV),
        (b"Bonjour, ceci est un texte.\nIl a deux lignes.\n", "note.pdf", media.TEXT),
        ("Caf\xe9 cr\xe8me, d\xe9j\xe0 vu".encode("cp1252"), "x.txt", media.TEXT),
    ],
)
def test_recognised_types(data: bytes, name: str, expected: str) -> None:
    assert sniff(data, name) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,  # image: no OCR
        b"\xff\xd8\xff\xe0" + b"\x00" * 20,  # JPEG
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20,  # legacy .doc
        zipped({"readme.txt": b"just a zip"}),  # zip that is no office document
        b"PK\x03\x04 truncated zip",
        b"\x00\x01\x02\x03binary",
        b"",
    ],
)
def test_unsupported_content_is_refused_whatever_the_name(data: bytes) -> None:
    assert sniff(data, "report.pdf") is None


def test_supported_list_names_every_type() -> None:
    listed = media.supported_list()
    for media_type in media.SUPPORTED:
        assert media_type in listed


def test_sniff_rewinds_the_file() -> None:
    f = io.BytesIO(b"%PDF-1.7 rest")
    media.sniff(f)
    assert f.read() == b"%PDF-1.7 rest"
