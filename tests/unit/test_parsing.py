"""parse(): text, pages and section paths per format; every bad document fails with its cause."""

from __future__ import annotations

import io
import socket
import time
import urllib.request
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from core.errors import IngestionError, UnsupportedMediaType
from core.media import CSV, DOCX, EML, HTML, MARKDOWN, ODT, PDF, PPTX, TEXT, XLSX
from ingestion.parsing import Element, ParseLimits, parse

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parents[1] / "fixtures"
SHARED_DATASETS = Path(__file__).parents[2] / ".." / "shared" / "datasets"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def texts(elements: list[Element]) -> str:
    return "\n".join(element.text for element in elements)


def find(elements: list[Element], fragment: str) -> Element:
    return next(element for element in elements if fragment in element.text)


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


# --- formats -----------------------------------------------------------------------------------


def test_pdf_text_pages_and_heuristic_title() -> None:
    elements = parse(fixture("unstructured_fake-memo.pdf"), media_type=PDF, filename="memo.pdf")

    body = find(elements, "bottles of water")
    assert "20,000 bottles of water, 10,000 blankets, and 200 laptops" in body.text
    assert {element.page for element in elements} == {1}
    assert body.section_path == ("To Whom it May Concern:",)
    assert find(elements, "May 5, 2023").section_path == ()


def test_docx_heading_levels_pages_and_table() -> None:
    elements = parse(fixture("docling_word_sample.docx"), media_type=DOCX, filename="s.docx")

    assert find(elements, "To get started with swimming").section_path == ("Let’s swim!",)
    # "Let's eat" is a level-2 heading under the level-1 "Let's swim!", after a page break.
    eat = find(elements, "important to eat")
    assert eat.section_path == ("Let’s swim!", "Let’s eat")
    assert eat.page == 2
    table = next(element for element in elements if element.kind == "Table")
    assert table.table_html is not None
    assert "<table" in table.table_html and "Calories per portion" in table.table_html
    assert all(element.table_html is None for element in elements if element.kind != "Table")


def test_odt_text_and_table() -> None:
    elements = parse(fixture("unstructured_fake.odt"), media_type=ODT, filename="fake.odt")

    assert elements[0].text == "Lorem ipsum dolor sit amet."
    table = next(element for element in elements if element.kind == "Table")
    assert table.table_html is not None and "<td>Mon</td>" in table.table_html


def test_pptx_slide_titles_and_bullets() -> None:
    elements = parse(
        fixture("unstructured_fake-power-point.pptx"), media_type=PPTX, filename="deck.pptx"
    )

    bullet = find(elements, "Find the bullet slide layout")
    assert bullet.kind == "ListItem"
    assert bullet.page == 1
    assert bullet.section_path == ("Adding a Bullet Slide",)


def test_html_nested_headings_and_table() -> None:
    elements = parse(fixture("unstructured_fake-html.html"), media_type=HTML, filename="f.html")

    assert find(elements, "My first paragraph").section_path == (
        "My First Heading",
        "My Second Heading",
    )
    table = next(element for element in elements if element.kind == "Table")
    assert table.section_path == ("My First Heading", "My Second Heading", "A Third Heading")
    assert table.table_html is not None and "Row 2, Cell 2" in table.table_html
    assert all(element.page is None for element in elements)


def test_markdown_headings_and_embedded_html_table() -> None:
    elements = parse(fixture("docling_mixed.md"), media_type=MARKDOWN, filename="mixed.md")

    table = next(element for element in elements if element.kind == "Table")
    assert table.section_path == ("Title", "Famous ducks")
    assert table.table_html is not None and "Balthazar Picsou" in table.table_html
    assert find(elements, "Some text").section_path == ("Title",)


def test_plain_text_in_windows_1252_is_decoded() -> None:
    data = "Café crème et thé.\n\nLa facture est arrivée à l'accueil.".encode("cp1252")

    elements = parse(data, media_type=TEXT, filename="notes.txt")

    assert "Café crème et thé." in texts(elements)
    assert "arrivée à l'accueil" in texts(elements)


def test_charset_parameter_of_the_media_type_is_honoured() -> None:
    data = "Žluťoučký kůň.".encode("iso-8859-2")

    elements = parse(data, media_type="text/plain; charset=iso-8859-2", filename="cz.txt")

    assert texts(elements) == "Žluťoučký kůň."


def test_csv_becomes_one_table_with_its_header() -> None:
    data = b"poste,montant\nloyer,800\ncourses,300\n"

    (table,) = parse(data, media_type=CSV, filename="budget.csv")

    assert table.kind == "Table"
    assert table.table_html is not None
    assert "<td>poste</td>" in table.table_html and "<td>800</td>" in table.table_html


def test_xlsx_sheets_are_pages() -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Poste", "Montant"])
    sheet.append(["Loyer", 800])
    sheet.append(["Courses", 300])
    workbook.create_sheet("Notes").append(["Une note simple pour le budget du foyer."])
    buf = io.BytesIO()
    workbook.save(buf)

    elements = parse(buf.getvalue(), media_type=XLSX, filename="budget.xlsx")

    table = find(elements, "Loyer")
    assert table.kind == "Table" and table.page == 1
    assert find(elements, "Une note simple").page == 2


def test_email_subject_heads_the_body_and_attachments_are_not_parsed() -> None:
    message = EmailMessage()
    message["From"] = "jean@example.fr"
    message["To"] = "claire@example.fr"
    message["Subject"] = "Facture de mars"
    message.set_content("Bonjour, voici la facture du mois de mars. Merci de la régler.")
    message.add_attachment(
        fixture("unstructured_fake-memo.pdf"),
        maintype="application",
        subtype="pdf",
        filename="memo.pdf",
    )

    elements = parse(message.as_bytes(), media_type=EML, filename="mail.eml")

    assert elements[0].kind == "Title" and elements[0].text == "Facture de mars"
    body = find(elements, "voici la facture")
    assert body.section_path[0] == "Facture de mars"
    assert "bottles of water" not in texts(elements)


def test_media_type_wins_over_the_file_name() -> None:
    elements = parse(fixture("unstructured_fake-memo.pdf"), media_type=PDF, filename="memo.docx")

    assert "bottles of water" in texts(elements)


def test_parsing_works_offline_with_a_blank_spacy_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    data = b"Introduction\n\nThis paragraph is narrative text. It has two sentences.\n"

    elements = parse(data, media_type=TEXT, filename="offline.txt")

    assert find(elements, "two sentences").section_path == ("Introduction",)
    import unstructured.nlp.tokenize as tokenize

    assert tokenize._get_nlp().pipe_names == ["sentencizer"]


def test_pdf_page_skipped_by_unstructured_falls_back_to_pypdf() -> None:
    path = SHARED_DATASETS / "doc_fixtures" / "pdf" / "docling_amt_handbook_sample.pdf"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared datasets are not part of the repository)")

    elements = parse(path.read_bytes(), media_type=PDF, filename=path.name)

    text = texts(elements)
    assert len(text) > 3000
    assert "The Boots self-locking nut is of one piece" in text.replace("T\nhe", "The")
    assert {element.page for element in elements} == {1}


# --- bad documents -----------------------------------------------------------------------------


def test_encrypted_pdf_needs_a_password() -> None:
    buf = io.BytesIO()
    with pikepdf.open(FIXTURES / "unstructured_fake-memo.pdf") as pdf:
        pdf.save(buf, encryption=pikepdf.Encryption(user="secret", owner="owner"))

    with pytest.raises(IngestionError, match=r"^encrypted PDF: a password is required$"):
        parse(buf.getvalue(), media_type=PDF, filename="locked.pdf")


def test_pdf_with_only_an_owner_password_is_read() -> None:
    buf = io.BytesIO()
    with pikepdf.open(FIXTURES / "unstructured_fake-memo.pdf") as pdf:
        pdf.save(buf, encryption=pikepdf.Encryption(user="", owner="owner"))

    elements = parse(buf.getvalue(), media_type=PDF, filename="restricted.pdf")

    assert "bottles of water" in texts(elements)


def test_image_only_pdf_without_ocr_has_no_extractable_text() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buf, "PDF")

    with pytest.raises(IngestionError, match="no extractable text; OCR not enabled"):
        parse(buf.getvalue(), media_type=PDF, filename="scan.pdf", limits=ParseLimits(ocr=None))


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_pdf_is_corrupt(keep: float) -> None:
    data = fixture("unstructured_fake-memo.pdf")

    with pytest.raises(IngestionError, match=r"^corrupt or unreadable PDF"):
        parse(data[: int(len(data) * keep)], media_type=PDF, filename="cut.pdf")


def test_bytes_without_pdf_header_are_not_a_pdf() -> None:
    with pytest.raises(IngestionError, match="corrupt or unreadable PDF: no %PDF header"):
        parse(b"hello, I am text", media_type=PDF, filename="fake.pdf")


def test_text_labelled_docx_is_refused_not_read_as_text() -> None:
    with pytest.raises(IngestionError, match=r"corrupt or unreadable .*DOCX.*not a valid zip"):
        parse(b"plain words, not a zip", media_type=DOCX, filename="fake.docx")


def test_truncated_docx_is_corrupt() -> None:
    data = fixture("unstructured_fake.docx")

    with pytest.raises(IngestionError, match="corrupt or unreadable"):
        parse(data[: len(data) // 2], media_type=DOCX, filename="cut.docx")


def test_zip_without_the_main_part_is_corrupt() -> None:
    data = zipped({"[Content_Types].xml": b"<Types/>", "other.xml": b"<x/>"})

    with pytest.raises(IngestionError, match=r"word/document\.xml missing"):
        parse(data, media_type=DOCX, filename="hollow.docx")


def test_password_protected_office_file_is_encrypted() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512

    with pytest.raises(IngestionError, match=r"^encrypted .*XLSX.*: a password is required$"):
        parse(ole, media_type=XLSX, filename="locked.xlsx")


@pytest.mark.parametrize(
    ("media_type", "main_part"),
    [
        (DOCX, "word/document.xml"),
        (PPTX, "ppt/presentation.xml"),
        (XLSX, "xl/workbook.xml"),
        (ODT, "content.xml"),
    ],
)
def test_zip_bomb_is_refused_by_ratio(media_type: str, main_part: str) -> None:
    bomb = zipped({main_part: b"<x/>", "bomb.bin": bytes(20_000_000)})  # ~20 KB on disk

    with pytest.raises(IngestionError, match=r"archive expands too much \(possible zip bomb\)"):
        parse(bomb, media_type=media_type, filename="bomb")


def test_zip_bomb_is_refused_by_size() -> None:
    bomb = zipped({"word/document.xml": b"<x/>", "bomb.bin": bytes(20_000_000)})
    limits = ParseLimits(max_archive_bytes=10_000_000, max_archive_ratio=1e9)

    with pytest.raises(IngestionError, match="possible zip bomb"):
        parse(bomb, media_type=DOCX, filename="bomb.docx", limits=limits)


def test_ten_thousand_page_text_fails_fast_naming_the_limit() -> None:
    page = ("Une ligne de texte ordinaire pour remplir la page. " * 60)[:3000]
    data = (page * 10_000).encode()

    started = time.perf_counter()
    with pytest.raises(IngestionError, match=r"about 10000 pages .*max_pages=2000"):
        parse(data, media_type=TEXT, filename="huge.txt")
    assert time.perf_counter() - started < 2.0


def test_pdf_with_more_pages_than_allowed_fails_before_parsing() -> None:
    with pytest.raises(IngestionError, match=r"too large: 1 pages > max_pages=0"):
        parse(
            fixture("unstructured_fake-memo.pdf"),
            media_type=PDF,
            filename="memo.pdf",
            limits=ParseLimits(max_pages=0),
        )


def test_too_many_characters_once_parsed() -> None:
    with pytest.raises(
        IngestionError, match=r"too large once parsed: \d+ characters > max_chars=50"
    ):
        parse(
            fixture("unstructured_fake-html.html"),
            media_type=HTML,
            filename="f.html",
            limits=ParseLimits(max_chars=50),
        )


def test_unsupported_media_type() -> None:
    with pytest.raises(UnsupportedMediaType, match="image/gif"):
        parse(b"GIF89a....", media_type="image/gif", filename="x.gif")


def test_empty_file() -> None:
    with pytest.raises(IngestionError, match="empty PDF file"):
        parse(b"", media_type=PDF, filename="empty.pdf")


def test_whitespace_only_text_has_no_extractable_text() -> None:
    with pytest.raises(IngestionError, match="no extractable text"):
        parse(b"  \n\n \t \n", media_type=TEXT, filename="blank.txt")
