"""A document's own title (issue #21: titles came from file names only): metadata first, then
a markup format's first heading; metadata that names a file or says nothing is no title."""

from __future__ import annotations

import io
import zipfile

import pypdf
import pytest

from core import media
from ingestion.parsing import Element, document_title

pytestmark = pytest.mark.unit


def pdf(title: str | None) -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(100, 100)
    if title is not None:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def office(core_title: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w/>")
        zf.writestr(
            "docProps/core.xml",
            '<cp:coreProperties xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<dc:title>{core_title}</dc:title></cp:coreProperties>",
        )
    return buf.getvalue()


def heading(text: str) -> Element:
    return Element(text=text, kind="Title", page=None, section_path=(text,))


def paragraph(text: str, path: tuple[str, ...] = ()) -> Element:
    return Element(text=text, kind="NarrativeText", page=None, section_path=path)


@pytest.mark.parametrize(
    ("data", "media_type", "expected"),
    [
        (pdf("AMT General Handbook"), media.PDF, "AMT General Handbook"),
        (pdf("Microsoft Word - memo.docx"), media.PDF, None),  # names a file
        (pdf("untitled"), media.PDF, None),
        (pdf(None), media.PDF, None),
        (
            office("Contrat de maintenance &amp; annexes"),
            media.DOCX,
            "Contrat de maintenance & annexes",
        ),
        (office(""), media.DOCX, None),
        (
            b"<html><head><title>\n  Cong&eacute;s pay&eacute;s </title></head></html>",
            media.HTML,
            "Congés payés",
        ),
        (b"%PDF-1.7 damaged", media.PDF, None),  # unreadable metadata: no title, no error
    ],
)
def test_titles_from_metadata(data: bytes, media_type: str, expected: str | None) -> None:
    assert document_title(data, media_type, []) == expected


def test_metadata_wins_over_the_first_heading() -> None:
    html = b"<html><head><title>Guide RH</title></head><body><h1>Bienvenue</h1></body></html>"
    assert document_title(html, media.HTML, [heading("Bienvenue")]) == "Guide RH"


def test_first_heading_of_markup_formats_only() -> None:
    md = [heading("Budget memo"), paragraph("Text", ("Budget memo",))]
    assert document_title(b"# Budget memo\n\nText", media.MARKDOWN, md) == "Budget memo"
    late = [paragraph("a"), paragraph("b"), paragraph("c"), heading("Annex")]
    assert document_title(b"a\n\nb\n\nc\n\n# Annex", media.MARKDOWN, late) is None
    # a PDF's first "Title" element is a layout guess (a date, "CONFIDENTIAL"): not a title
    assert document_title(pdf(None), media.PDF, [heading("CONFIDENTIAL")]) is None
    assert document_title(b"Budget\n\nText", media.TEXT, [heading("Budget")]) is None
