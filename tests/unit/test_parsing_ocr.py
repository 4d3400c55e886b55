"""Scans through the parser (issue #16): a PDF page without a text layer and an image file are
read by OCR, with a note on the job; OCR off or deferred leaves them unread and says so.

Runs Tesseract on the real scans of tests/fixtures/scans (CC0, SOURCE.md there); skips when it
is not installed, except under GEDRAG_TEST_REQUIRE_SERVICES=1 (CI), where it fails.
"""

from __future__ import annotations

import io

import pypdf
import pytest
from PIL import Image

from core import media
from core.errors import IngestionError
from ingestion.parsing import ParseLimits, parse, parse_document
from tests.unit.test_ocr import EXPECTED, SCANS, cer, tesseract  # noqa: F401  (fixture)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("tesseract")]


def text_of(elements: list) -> str:  # type: ignore[type-arg]
    return "\n".join(e.text for e in elements)


def born_digital_page(words: str) -> bytes:
    """A one-page PDF with a real text layer (reportlab is not a dependency: unstructured's
    own writer is not either, so the page is drawn by pypdf from a tiny content stream)."""
    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(width=595, height=842)
    font = pypdf.generic.DictionaryObject(
        {
            pypdf.generic.NameObject("/Type"): pypdf.generic.NameObject("/Font"),
            pypdf.generic.NameObject("/Subtype"): pypdf.generic.NameObject("/Type1"),
            pypdf.generic.NameObject("/BaseFont"): pypdf.generic.NameObject("/Helvetica"),
        }
    )
    page[pypdf.generic.NameObject("/Resources")] = pypdf.generic.DictionaryObject(
        {
            pypdf.generic.NameObject("/Font"): pypdf.generic.DictionaryObject(
                {pypdf.generic.NameObject("/F1"): writer._add_object(font)}
            )
        }
    )
    stream = pypdf.generic.DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 72 760 Td ({words}) Tj ET".encode("latin-1"))
    page[pypdf.generic.NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_scanned_pdf_is_read_by_ocr_with_a_note() -> None:
    data = (SCANS / "gd-0189-scan.pdf").read_bytes()
    parsed = parse_document(data, media_type=media.PDF, filename="devis.pdf")

    assert parsed.ocr_pages == (1,)
    assert parsed.scan_pages == ()
    assert cer(text_of(parsed.elements), EXPECTED["gd-0189-scan.pdf"]["text"][0]) < 0.05
    assert {e.page for e in parsed.elements} == {1}
    assert any("read by OCR" in w and "page(s) 1" in w for w in parsed.warnings)


def test_deferred_ocr_lists_the_scanned_pages_and_reads_nothing() -> None:
    data = (SCANS / "gd-0189-scan.pdf").read_bytes()
    parsed = parse_document(data, media_type=media.PDF, filename="devis.pdf", defer_ocr=True)

    assert parsed.elements == []
    assert parsed.scan_pages == (1,)
    assert parsed.ocr_pages == ()


def test_multipage_tiff_image_is_read_page_by_page() -> None:
    data = (SCANS / "gd-0224-scan.tif").read_bytes()
    assert media.sniff(io.BytesIO(data), "contrat.tif") == media.TIFF

    deferred = parse_document(data, media_type=media.TIFF, filename="c.tif", defer_ocr=True)
    assert deferred.scan_pages == (1, 2)

    parsed = parse_document(data, media_type=media.TIFF, filename="c.tif")
    expected = EXPECTED["gd-0224-scan.tif"]["text"]
    for page, text in enumerate(expected, start=1):
        read = text_of([e for e in parsed.elements if e.page == page])
        assert cer(read, text) < 0.05
    assert parsed.ocr_pages == (1, 2)


def test_image_with_ocr_off_fails_with_the_setting_named() -> None:
    data = (SCANS / "gd-0202-scan.png").read_bytes()
    with pytest.raises(IngestionError, match="GEDRAG_OCR__ENABLED"):
        parse(data, media_type=media.PNG, filename="lettre.png", limits=ParseLimits(ocr=None))


def test_pdf_text_pages_are_kept_and_a_blank_scan_page_adds_nothing() -> None:
    text_page = pypdf.PdfReader(io.BytesIO(born_digital_page("Facture 42 du fournisseur Dupont")))
    blank = io.BytesIO()
    Image.new("RGB", (850, 1100), "white").save(blank, "PDF", resolution=100)
    writer = pypdf.PdfWriter()
    writer.add_page(text_page.pages[0])
    writer.add_page(pypdf.PdfReader(blank).pages[0])
    out = io.BytesIO()
    writer.write(out)

    parsed = parse_document(out.getvalue(), media_type=media.PDF, filename="mixed.pdf")

    assert "Facture 42 du fournisseur Dupont" in text_of(parsed.elements)
    assert {e.page for e in parsed.elements} == {1}
    assert parsed.ocr_pages == ()  # OCR read nothing on the blank page: nothing replaced


def test_blank_scan_fails_saying_ocr_found_no_text() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buf, "PDF")
    with pytest.raises(IngestionError, match="no extractable text: OCR found no legible text"):
        parse(buf.getvalue(), media_type=media.PDF, filename="blank.pdf")
