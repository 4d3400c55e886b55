"""ingestion.ocr: text found on real scans, rotation and skew fixed, bad input refused.

The scans are four ged_docs files (tests/fixtures/scans/SOURCE.md) with their exact page text;
OCR quality is checked as a character error rate against it. Tests that run Tesseract skip when
it is not installed, except under GEDRAG_TEST_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import unicodedata
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from core.errors import IngestionError
from ingestion import ocr

pytestmark = pytest.mark.unit

SCANS = Path(__file__).resolve().parents[1] / "fixtures" / "scans"
EXPECTED: dict[str, dict[str, Any]] = json.loads((SCANS / "expected.json").read_text("utf-8"))
REQUIRE = os.environ.get("GEDRAG_TEST_REQUIRE_SERVICES") == "1"


def tesseract_ready() -> str | None:
    """None when Tesseract with fra, eng and osd is installed, else why not."""
    if shutil.which("tesseract") is None:
        return f"Tesseract is not installed ({ocr.INSTALL_HINT})"
    try:
        ocr.check_languages("fra+eng+osd")
    except IngestionError as exc:
        return exc.detail
    return None


@pytest.fixture
def tesseract() -> None:
    reason = tesseract_ready()
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(reason)
    pytest.skip(reason)


def cer(hyp: str, ref: str) -> float:
    """Levenshtein distance / reference length after NFC and whitespace collapsing."""

    def norm(t: str) -> str:
        return re.sub(r"\s+", " ", unicodedata.normalize("NFC", t)).strip()

    return Levenshtein.distance(norm(hyp), norm(ref)) / len(norm(ref))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (1-bit grey) and whose data is empty."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def tiff_pages(pages: int) -> bytes:
    """An uncompressed 8x8 bilevel TIFF with ``pages`` IFDs sharing one strip (1 MB for 10,000
    pages, written in milliseconds where Pillow's writer takes minutes)."""
    strip = b"\x00" * 8
    body = bytearray(b"II*\x00" + struct.pack("<I", 8 + len(strip)) + strip)
    entries = [
        (256, 4, 8), (257, 4, 8), (258, 3, 1), (259, 3, 1), (262, 3, 1),
        (273, 4, 8), (277, 3, 1), (278, 4, 8), (279, 4, len(strip)),
    ]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    first = len(body)
    for i in range(pages):
        following = first + (i + 1) * ifd_size if i < pages - 1 else 0
        body += struct.pack("<H", len(entries))
        for tag, kind, value in entries:
            packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            body += struct.pack("<HHI", tag, kind, 1) + packed
        body += struct.pack("<I", following)
    return bytes(body)


# --- reading real scans (Tesseract) ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_bilevel_png_is_read_deskewed_and_upscaled() -> None:
    expected = EXPECTED["gd-0202-scan.png"]
    (page,) = ocr.ocr_images((SCANS / "gd-0202-scan.png").read_bytes())
    assert cer(page.text, expected["text"][0]) < 0.02
    assert "Réf. : MED/2025/385" in page.text
    assert page.rotation == 0
    # The page was scanned turned by -0.8 degrees; the correction is the opposite angle.
    assert page.skew == pytest.approx(0.8, abs=0.2)
    assert page.confidence > 85
    assert not page.photo
    assert set(page.timings) >= {"load", "preprocess", "tesseract", "layout"}
    assert page.seconds == pytest.approx(sum(page.timings.values()), abs=1e-3)


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_pdf_page_stored_sideways_is_turned_upright() -> None:
    expected = EXPECTED["gd-0189-scan.pdf"]
    assert "rotated:p1:270" in expected["degradations"]
    (page,) = ocr.ocr_pdf_pages((SCANS / "gd-0189-scan.pdf").read_bytes(), [1])
    assert page.rotation == 270
    assert cer(page.text, expected["text"][0]) < 0.04
    # Sender and client blocks printed side by side read across, as printed.
    assert "Descamps Logistique SA Client :" in page.text


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_upside_down_page_is_turned_by_180() -> None:
    (image,) = ocr.load_images((SCANS / "gd-0202-scan.png").read_bytes())
    upside_down = image.convert("L").rotate(180)
    upside_down.info["dpi"] = image.info["dpi"]
    page = ocr.ocr_image(upside_down)
    assert page.rotation == 180
    assert cer(page.text, EXPECTED["gd-0202-scan.png"]["text"][0]) < 0.02


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_phone_photo_is_flattened_and_read() -> None:
    expected = EXPECTED["gd-0017-photo.jpg"]
    (page,) = ocr.ocr_images((SCANS / "gd-0017-photo.jpg").read_bytes(), "eng")
    assert page.photo
    assert cer(page.text, expected["text"][0]) < 0.03
    assert "Kathleen Wood" in page.text


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_multipage_tiff_gives_one_text_per_page_in_order() -> None:
    expected = EXPECTED["gd-0224-scan.tif"]
    pages = ocr.ocr_images((SCANS / "gd-0224-scan.tif").read_bytes(), "fra")
    assert len(pages) == 2
    for page, ref in zip(pages, expected["text"], strict=True):
        assert cer(page.text, ref) < 0.02
    assert "Contrat n° 2023-C0306" in pages[0].text


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_blocks_reading_order_has_the_same_words() -> None:
    pdf = (SCANS / "gd-0189-scan.pdf").read_bytes()
    (rows,) = ocr.ocr_pdf_pages(pdf, [1])
    (blocks,) = ocr.ocr_pdf_pages(pdf, [1], reading_order="blocks")
    assert sorted(rows.text.split()) == sorted(blocks.text.split())
    ref = EXPECTED["gd-0189-scan.pdf"]["text"][0]
    assert cer(rows.text, ref) <= cer(blocks.text, ref)


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.usefixtures("tesseract")
def test_noise_image_has_no_text() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (600, 450), dtype=np.uint8)
    with pytest.raises(IngestionError, match="no text recognised"):
        ocr.ocr_image(Image.fromarray(noise))
    blank = ocr.ocr_image(Image.new("L", (450, 600), 255), require_text=False)
    assert (blank.text, blank.words) == ("", 0)


@pytest.mark.usefixtures("tesseract")
def test_image_too_small_to_hold_text() -> None:
    with pytest.raises(IngestionError, match=r"no text recognised: the image is 12x8 pixels"):
        ocr.ocr_image(Image.new("L", (12, 8), 0))
    assert ocr.ocr_image(Image.new("L", (12, 8), 0), require_text=False).text == ""


@pytest.mark.usefixtures("tesseract")
def test_blank_page_among_others_is_empty_but_all_blank_is_refused() -> None:
    buf = io.BytesIO()
    Image.new("L", (300, 400), 255).save(buf, format="PNG")
    with pytest.raises(IngestionError, match="no text recognised"):
        ocr.ocr_images(buf.getvalue())


def test_missing_tesseract_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(IngestionError, match=r"apt-get install tesseract-ocr tesseract-ocr-fra"):
        ocr.ocr_image(Image.new("L", (50, 50), 255))
    with pytest.raises(IngestionError, match="Tesseract is not installed"):
        ocr.ocr_pdf_pages((SCANS / "gd-0189-scan.pdf").read_bytes(), [1])


@pytest.mark.usefixtures("tesseract")
def test_languages_are_checked() -> None:
    with pytest.raises(IngestionError, match="invalid OCR languages"):
        ocr.check_languages("fra;rm -rf /")
    with pytest.raises(IngestionError, match="tesseract-ocr-zzz"):
        ocr.check_languages("fra+zzz")


def test_truncated_jpeg_is_refused() -> None:
    data = (SCANS / "gd-0017-photo.jpg").read_bytes()
    with pytest.raises(IngestionError, match="truncated"):
        ocr.load_images(data[: len(data) // 2])


def test_zero_by_zero_image_is_refused() -> None:
    with pytest.raises(IngestionError, match="empty image: 0x0"):
        ocr.load_images(png_header(0, 0))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 100,000 x 100,000 declared: Pillow's own guard refuses it at open.
    with pytest.raises(IngestionError, match="decompression bomb"):
        ocr.load_images(png_header(100_000, 100_000))
    # Under Pillow's limit but over ours: refused from the header, no pixel decoded.
    with pytest.raises(IngestionError, match=r"20000x3000 pixels > max_pixels=40000000"):
        ocr.load_images(png_header(20_000, 3_000), max_pixels=40_000_000)


def test_tiff_with_ten_thousand_pages_is_refused() -> None:
    data = tiff_pages(10_000)
    with pytest.raises(IngestionError, match="too many pages: more than max_pages=2000"):
        ocr.load_images(data)
    assert len(ocr.load_images(tiff_pages(3), max_pages=3)) == 3


def test_unreadable_bytes_and_pdf_errors() -> None:
    with pytest.raises(IngestionError, match="empty image file"):
        ocr.load_images(b"")
    with pytest.raises(IngestionError, match="corrupt or unreadable image"):
        ocr.load_images(b"not an image at all")
    with pytest.raises(IngestionError, match="unreadable PDF"):
        ocr.ocr_pdf_pages(b"%PDF-1.7 garbage", [1])
    pdf = (SCANS / "gd-0189-scan.pdf").read_bytes()
    with pytest.raises(IngestionError, match="page 2 out of range: the PDF has 1 pages"):
        ocr.ocr_pdf_pages(pdf, [2])
    with pytest.raises(IngestionError, match="too many pages"):
        ocr.ocr_pdf_pages(pdf, [1, 1, 1], max_pages=2)


def test_images_load_upright_with_their_resolution() -> None:
    (png,) = ocr.load_images((SCANS / "gd-0202-scan.png").read_bytes())
    assert png.size == (1654, 2339)
    assert round(png.info["dpi"][0]) == 200
    tiff = ocr.load_images((SCANS / "gd-0224-scan.tif").read_bytes())
    assert [t.size for t in tiff] == [(2481, 3508)] * 2
    # EXIF orientation 6 (rotate 90 clockwise to view) is applied: a 40x20 picture stands up.
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(buf, format="JPEG", exif=exif.tobytes())
    (photo,) = ocr.load_images(buf.getvalue())
    assert photo.size == (20, 40)
    # A 16-bit scan keeps its contrast (Pillow's convert("L") would clip it to white).
    deep = Image.fromarray(np.linspace(0, 60000, 64 * 64).reshape(64, 64).astype(np.uint16))
    gray, _ = ocr._to_gray(deep)
    assert (gray.min(), gray.max()) == (0, 255)


# --- reading order and the text-layer check (no Tesseract) ----------------------------------


def tsv(*words: tuple[int, int, int, int, int, float, str]) -> str:
    """Tesseract TSV rows for (block, line, left, top, height, conf, text) words."""
    head = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        f"5\t1\t{b}\t1\t{ln}\t{i}\t{left}\t{top}\t{20 * len(t)}\t{h}\t{c}\t{t}"
        for i, (b, ln, left, top, h, c, t) in enumerate(words, start=1)
    ]
    return "\n".join([head, *rows])


def test_side_by_side_blocks_read_across_and_noise_lines_dropped() -> None:
    lines = ocr._parse_tsv(
        tsv(
            (1, 1, 100, 100, 30, 95.0, "Sender"),
            (1, 2, 100, 140, 30, 95.0, "Street"),
            (2, 1, 1200, 102, 30, 95.0, "Client"),
            (2, 2, 1200, 141, 30, 95.0, "Avenue"),
            (3, 1, 600, 300, 60, 20.0, "ÿ"),  # a stamp fragment: one word, confidence 20
            (4, 1, 100, 400, 30, 96.0, "Total"),
            (4, 1, 1200, 400, 30, 96.0, "12,00"),
        )
    )
    kept, dropped = ocr._drop_noise(lines)
    assert dropped == 1
    assert ocr._text(kept, "rows") == "Sender Client\nStreet Avenue\nTotal 12,00"
    assert ocr._text(kept, "blocks") == "Sender\nStreet\nClient\nAvenue\nTotal 12,00"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("   \n  ", True),
        ("Page 3", True),
        ("(cid:12)(cid:15)(cid:3) (cid:44)(cid:51)(cid:3) Facture", True),
        (
            "\ue000\ue001\ue002\ue003 \ue004\ue005\ue006\ue007 \ue008\ue009\ue00a\ue00b §§ ¤¤ ##",
            True,
        ),
        ("\ufffd" * 30, True),
        ("Je vous informe par la présente de ma décision de résilier le contrat.", False),
        ("Total HT 1 234,56 € TVA 20 % 246,91 € Total TTC 1 481,47 €", False),
        ("01/08/2024 PRLV SEPA ORANGE SA 137,82 02/08/2024 VIR SEPA 342,75", False),
    ],
)
def test_needs_ocr(text: str, expected: bool) -> None:
    assert ocr.needs_ocr(text) is expected


@pytest.mark.slow
@pytest.mark.usefixtures("tesseract")
def test_region_the_layout_dropped_is_found_and_read() -> None:
    # Simulate Tesseract's layout discarding a block: remove lines from a real reading, then
    # the region finder must point at them and a second read must bring their words back.
    (image,) = ocr.load_images((SCANS / "gd-0202-scan.png").read_bytes())
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    binary = ocr.check_languages("fra")
    lines = ocr._read_words(binary, gray, 200, "fra", 60, sauvola=False)
    dropped = [ln for ln in lines if any(w.text == "Objet" for w in ln.words)]
    assert len(dropped) == 1
    kept = [ln for ln in lines if ln not in dropped]
    assert ocr._unread_regions(gray, lines) == []
    boxes = ocr._unread_regions(gray, kept)
    (line,) = dropped
    inside = [
        b for b in boxes if b[0] <= line.words[0].left and b[1] <= line.top and b[3] >= line.bottom
    ]
    assert inside
    recovered = [
        w.text
        for b in inside
        for ln in ocr._read_region(binary, gray, b, 200, "fra", 60, False)
        for w in ln.words
    ]
    assert "Résiliation" in recovered
