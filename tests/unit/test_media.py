"""Document types are decided from content; the file name is only a hint between text types."""

from __future__ import annotations

import io
import re
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
        b"GIF89a" + b"\x00" * 20,  # an image that is no page (GIF)
        b"BM" + b"\x00" * 20,  # BMP
        b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20,  # an MP4 video (ISO media, not HEIF)
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20,  # legacy .doc
        zipped({"readme.txt": b"just a zip"}),  # zip that is no office document
        b"PK\x03\x04 truncated zip",
        b"\x00\x01\x02\x03binary",
        b"",
    ],
)
def test_unsupported_content_is_refused_whatever_the_name(data: bytes) -> None:
    assert sniff(data, "report.pdf") is None


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n", media.PNG),
        (b"\xff\xd8\xff\xe0", media.JPEG),
        (b"II*\x00", media.TIFF),
        (b"MM\x00*", media.TIFF),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", media.WEBP),
        (b"\x00\x00\x00\x18ftypheic", media.HEIC),
        (b"\x00\x00\x00\x18ftypmif1", media.HEIC),
    ],
)
def test_page_images_are_recognised_for_ocr_whatever_the_name(head: bytes, expected: str) -> None:
    assert sniff(head + b"\x00" * 20, "scan.pdf") == expected
    assert expected in media.IMAGES


def test_supported_list_names_every_type() -> None:
    listed = media.supported_list()
    for media_type in media.SUPPORTED:
        assert media_type in listed


def test_sniff_rewinds_the_file() -> None:
    f = io.BytesIO(b"%PDF-1.7 rest")
    media.sniff(f)
    assert f.read() == b"%PDF-1.7 rest"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\xff", "photo.jpg"),  # issue #21: a 1-byte photo was indexed as the text "ÿ"
        (b"\xff", "x"),  # the same byte without a name: not text either
        (b"hello, these are words", "holiday.png"),  # text in a file named as an image
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "voice.wav"),
        (bytes(range(0x80, 0x100)) * 4, "blob"),  # binary without NUL bytes
    ],
)
def test_content_that_is_no_document_is_refused(data: bytes, name: str) -> None:
    assert sniff(data, name) is None


def test_a_document_named_like_an_image_is_still_recognised() -> None:
    assert sniff(b"%PDF-1.7\n", "scan.jpg") == media.PDF
    assert sniff(zipped({"[Content_Types].xml": OOXML, "word/document.xml": b"<w/>"}), "a.zip") == (
        media.DOCX
    )


# -- issue #23: valid text is read, lying names are refused with their reason ------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café crème à la cantine.\n".encode("utf-16"), media.TEXT),  # UTF-16 with its BOM
        ("Printers are upstairs.\n".encode("utf-16-le"), media.TEXT),  # no BOM
        ("Le café est servi. ".encode() * 20 + b"\xff\xfe bad bytes", media.TEXT),
        (b"\x1b[32mINFO\x1b[0m backup done\n" * 20, media.TEXT),  # ANSI colours
        ("\ufeff# Titre\n\nUn [lien](http://x).\n".encode(), media.MARKDOWN),
    ],
)
def test_valid_text_in_any_encoding_is_text(data: bytes, expected: str) -> None:
    assert sniff(data, "notes") == expected


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"plain words\n", "report.docx", "named as Word (DOCX) but is not one"),
        (b"a,b\n1,2\n", "sheet.xlsx", "named as Excel (XLSX) but is not one"),
        (zipped({"readme.txt": b"x"}), "report.docx", "zip archive but not a Word (DOCX) file"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "old.doc", "legacy Office file"),
        (b"GIF89a" + b"\x00" * 20, "scan.pdf", "is a GIF image"),
        (bytes(range(256)) * 4, "blob.dat", "holds binary data"),
    ],
)
def test_refusals_say_why(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(media.UnsupportedMediaType, match=re.escape(reason)):
        media.check(io.BytesIO(data), name)


def test_decoding_counts_the_bytes_it_replaces() -> None:
    assert media.decode_text("crème".encode("cp1252")) == media.DecodedText("crème", "cp1252")
    damaged = media.decode_text("déjà ".encode() + b"\xff" + b" vu")
    assert (damaged.text, damaged.encoding, damaged.replaced) == ("déjà \ufffd vu", "utf-8", 1)
    genuine = media.decode_text("a \ufffd b".encode())
    assert genuine.replaced == 0
    assert media.decode_text("x".encode("utf-16")).encoding == "utf-16-le"
